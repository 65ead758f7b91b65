/**
 * The vessel workers of a run, as reloads change them: a vessel added gets a worker, a changed
 * one a new worker (new connections with the new settings) once the old one has stopped, and a
 * removed one retires: no new work, its transfers in flight end, then its connections close
 * (or at once on the next reload: `hurry`). Unchanged vessels keep their worker, and with it
 * their connections and transfers.
 */
import type { Logger } from '../log.js';
import type { VesselSettings } from '../settings/load.js';
import type { StateStore } from '../state/store.js';
import { pushEvents } from './events.js';
import type { Replicator } from './replicator.js';
import { VesselWorker, type WorkerOptions } from './vessel-worker.js';

export class Fleet {
  readonly #active = new Map<string, VesselWorker>();
  /** Removed vessels whose transfers in flight are ending. */
  readonly #retiring = new Set<VesselWorker>();
  /** Stops under way (retirements, changed vessels), awaited by `stop`. */
  readonly #stopping = new Set<Promise<void>>();
  readonly #store: StateStore;
  readonly #replicator: Replicator;
  readonly #log: Logger;
  readonly #options: WorkerOptions;
  #stopped = false;
  /**
   * A removed vessel has retired: the files it had in flight, whose move to processed/ waited
   * for it, are looked at again.
   */
  onRetired: () => void = () => {};

  readonly #throttleFor: ((vessel: VesselSettings) => WorkerOptions['throttle']) | undefined;

  /** `throttleFor`: the bandwidth limit of a vessel's writes, from its settings (see push/bandwidth/limiter.ts). */
  constructor(store: StateStore, replicator: Replicator, log: Logger, options: WorkerOptions, throttleFor?: (vessel: VesselSettings) => WorkerOptions['throttle']) {
    this.#store = store;
    this.#replicator = replicator;
    this.#log = log;
    this.#options = options;
    this.#throttleFor = throttleFor;
  }

  /** The workers of the vessels in the settings now. */
  get workers(): VesselWorker[] {
    return [...this.#active.values()];
  }

  start(vessel: VesselSettings): void {
    if (this.#stopped) return; // a changed vessel whose old worker stopped as the run ended
    const worker = new VesselWorker(vessel, this.#store, this.#replicator, this.#log, { ...this.#options, throttle: this.#throttleFor?.(vessel) });
    this.#active.set(vessel.name, worker);
    this.#replicator.addWorker(worker);
  }

  /** A vessel removed by a reload: what is in flight ends, nothing new starts. */
  retire(name: string): void {
    const worker = this.#active.get(name);
    if (!worker) return;
    this.#active.delete(name);
    this.#replicator.retireWorker(name);
    this.#retiring.add(worker);
    this.#log.info({ vessel: name }, 'vessel removed from the settings; its transfers in flight end, then it disconnects (another reload: at once)');
    void this.#track(worker.retire().finally(() => {
      this.#retiring.delete(worker);
      this.#replicator.retired(worker);
      if (!this.#stopped) this.onRetired();
      this.#log.info({ vessel: name }, 'removed vessel disconnected');
      pushEvents.emit({ type: 'retired', vessel: name });
    }));
  }

  /**
   * A vessel whose settings changed: its transfers are cut short (the vessel keeps what it
   * has, and the new worker resumes from it), then it connects again with the new settings.
   */
  async replace(vessel: VesselSettings): Promise<void> {
    const old = this.#take(vessel.name);
    if (old) await this.#track(old.stop());
    this.start(vessel);
    this.#log.info({ vessel: vessel.name }, 'vessel settings changed; reconnecting with the new ones');
  }

  /** Another reload came: the removed vessels still finishing transfers stop now. */
  hurry(): void {
    for (const worker of this.#retiring) void worker.stop();
  }

  /** The run ends: every worker, retiring ones included, stops and its transfers end. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.#active.values(), ...this.#retiring].map((w) => w.stop()));
    await Promise.all(this.#stopping);
  }

  #take(name: string): VesselWorker | undefined {
    const worker = this.#active.get(name);
    this.#active.delete(name);
    this.#replicator.removeWorker(name);
    return worker;
  }

  #track(stopping: Promise<void>): Promise<void> {
    this.#stopping.add(stopping);
    return stopping.finally(() => this.#stopping.delete(stopping));
  }
}
