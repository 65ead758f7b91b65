/**
 * What a transfer to a vessel tells the shore as it goes: the stage reached, bytes
 * for `status` (written at most once a second), data moving (for FlightControl and the link's
 * give-up clock). Once a transfer is cancelled, its updates would describe a replaced version:
 * they are dropped.
 */
import type { Logger } from '../log.js';
import { pushEvents } from './events.js';
import type { StateStore } from '../state/store.js';
import type { QueuedFile } from './delivery-queue.js';
import type { FlightControl } from './flight-control.js';
import type { Lane } from './lanes.js';
import type { DeliveryHooks, DeliveryJob } from './upload/upload.js';

/**
 * How often a transfer's byte count is written to the state store for `status`. The progress
 * hook runs once per SFTP write (thousands a second); it only compares a clock with this.
 */
const progressSaveMs = 1000;

export class TransferHooks {
  readonly #vessel: string;
  readonly #store: StateStore;
  readonly #log: Logger;
  readonly #flight: FlightControl;
  readonly #moved: (now: number) => void;
  /** The vessel refused a file's mode or time once: said once, not for every file. */
  #attrsWarned = false;

  /** `moved`: data reached the vessel (at `now`). */
  constructor(vessel: string, store: StateStore, log: Logger, flight: FlightControl, moved: (now: number) => void) {
    this.#vessel = vessel;
    this.#store = store;
    this.#log = log;
    this.#flight = flight;
    this.#moved = moved;
  }

  /** The hooks of one attempt at `file` on `lane`. */
  for(file: QueuedFile, job: DeliveryJob, lane: Lane, signal: AbortSignal): DeliveryHooks {
    const tracked = file.kind === 'large';
    let bytes = 0;
    let savedAt = 0;
    const save = (now: number) => {
      savedAt = now;
      if (tracked && !signal.aborted) this.#store.transferProgress(file.id, this.#vessel, bytes);
    };
    return {
      signal,
      sha256Known: (sha256: string) => this.#store.setSha256(file.id, job.versionKey, sha256),
      sending: (bytesPresent: number) => {
        bytes = bytesPresent;
        file.stage ??= 'started';
        save(Date.now());
      },
      progress: (n: number) => {
        const now = Date.now();
        this.#moved(now);
        bytes += n;
        lane.carried += n;
        this.#flight.carried(lane.carried);
        if (now - savedAt >= progressSaveMs) save(now);
      },
      joining: () => {
        save(Date.now()); // everything is on the vessel: show 100 % while it is joined and checked
        this.#log.debug({ file: job.localPath, destination: job.destination }, 'joining, verifying and placing on vessel');
        pushEvents.emit({ type: 'joining', vessel: this.#vessel, file: job.localPath });
      },
      stage: (stage: 'sent' | 'placing') => {
        file.stage = stage;
      },
      attrsRefused: (detail: string) => {
        if (this.#attrsWarned) return;
        this.#attrsWarned = true;
        this.#log.warn({ file: job.localPath, err: detail }, 'vessel refuses to set file modes or times; files are delivered all the same, with what the vessel gives them (said once per vessel)');
      },
    };
  }
}
