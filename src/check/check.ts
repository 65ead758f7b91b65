/**
 * `contentmonster check`: can each vessel take files? One connection per vessel (in parallel)
 * and one remote script; the findings are data, printed by cli/check.ts.
 *
 * Nothing is recorded and nothing is created on the vessels: host keys are judged against the
 * state database opened read-only (so a running daemon is never blocked), and a missing
 * folder is judged by its nearest existing ancestor, where only a probe file is written and
 * removed at once.
 */
import { existsSync } from 'node:fs';
import { ConfigError, VesselRefusedError, describe } from '../errors.js';
import type { Logger } from '../log.js';
import type { DirectorySettings, Settings, VesselSettings } from '../settings/load.js';
import { openStateStore } from '../state/database.js';
import { proveCommands } from '../push/commands-probe.js';
import { SftpConnection } from '../ssh/connection.js';
import { vesselEndpoint } from '../push/endpoint.js';
import { sameStorageStep } from '../push/same-storage.js';
import type { HostKeyRecords, HostKeyVerdict } from '../ssh/host-key.js';
import { probeInput, probeSha256 } from '../push/upload/hasher.js';
import { checkProbeScript, parseCheckProbe, type CheckProbe, type CommandProbe, type FolderProbe } from '../push/upload/probes.js';
import { oneLine, shownPath } from '../one-line.js';

/** The columns of the check, in the order they are tried; a step after a failed one is `skipped`. */
export const checkSteps = ['connect', 'hostKey', 'auth', 'commands', 'tempDir', 'tools', 'remoteLocations'] as const;
export type CheckStep = (typeof checkSteps)[number];

export interface StepResult {
  /** `new`: a host key seen for the first time (fine: it is recorded on the first run). */
  state: 'ok' | 'new' | 'fail' | 'skipped';
  /** Why it failed, one line each, without the vessel's name. */
  problems: string[];
  /** What an operator should know although it is fine, one line each. */
  notes: string[];
}

export interface VesselCheck {
  vessel: string;
  /** `host:port` */
  address: string;
  steps: Record<CheckStep, StepResult>;
}

/** Every step ok (a new host key is ok). */
export function vesselReady(check: VesselCheck): boolean {
  return checkSteps.every((s) => check.steps[s].state === 'ok' || check.steps[s].state === 'new');
}

const ok = (notes: string[] = []): StepResult => ({ state: 'ok', problems: [], notes });
const fail = (...problems: string[]): StepResult => ({ state: 'fail', problems, notes: [] });
const skipped = (): StepResult => ({ state: 'skipped', problems: [], notes: [] });

export interface CheckOptions {
  log?: Logger;
}

/** Checks every vessel at once; never throws for a vessel's problem (only a ConfigError for an unreadable state database). */
export async function checkVessels(settings: Settings, options: CheckOptions = {}): Promise<VesselCheck[]> {
  // A database that cannot be opened is a ConfigError naming it (exit 2), as for `run`.
  const store = existsSync(settings.monster.database) ? openStateStore(settings, { readonly: true }) : undefined;
  try {
    // Judged against the records, never written: a new key is recorded by `run`, not here.
    const records: HostKeyRecords = { hostKey: (host) => store?.hostKey(host), recordHostKey: () => {} };
    return await Promise.all(settings.vessels.map((v) => checkVessel(v, settings.directories, records, options.log)));
  } finally {
    store?.close();
  }
}

/** The Directories a vessel receives (those not in its IgnoreDirs). */
export function directoriesOf(vessel: VesselSettings, directories: readonly DirectorySettings[]): DirectorySettings[] {
  return directories.filter((d) => !vessel.ignoreDirs.includes(d.name));
}

async function checkVessel(
  vessel: VesselSettings, directories: readonly DirectorySettings[], records: HostKeyRecords, log?: Logger,
): Promise<VesselCheck> {
  const address = vessel.address.includes(':') ? `[${vessel.address}]:${vessel.port}` : `${vessel.address}:${vessel.port}`;
  const steps = Object.fromEntries(checkSteps.map((s) => [s, skipped()])) as Record<CheckStep, StepResult>;
  const result: VesselCheck = { vessel: vessel.name, address, steps };
  let offered: { fingerprint: string; verdict: HostKeyVerdict } | undefined;
  let connection: SftpConnection;
  try {
    connection = await SftpConnection.open({
      endpoint: vesselEndpoint(vessel),
      hostKeys: records,
      onHostKey: (fingerprint, verdict) => {
        offered = { fingerprint, verdict };
      },
    });
  } catch (err) {
    log?.debug({ vessel: vessel.name, err: describe(err) }, 'connection failed');
    Object.assign(steps, connectFailure(vessel, address, err, offered, records));
    return redacted(result, vessel);
  }
  steps.connect = ok();
  steps.hostKey = hostKeyStep(vessel, offered);
  steps.auth = ok();
  try {
    const received = directoriesOf(vessel, directories);
    Object.assign(steps, await probe(connection, vessel, received, log));
  } finally {
    connection.disconnect('check done');
  }
  return redacted(result, vessel);
}

/** Which step a failed SftpConnection.open stopped at, and why. */
function connectFailure(
  vessel: VesselSettings, address: string, err: unknown,
  offered: { fingerprint: string; verdict: HostKeyVerdict } | undefined, records: HostKeyRecords,
): Partial<Record<CheckStep, StepResult>> {
  // An unreadable key file or a wrong passphrase is found before any connection is made.
  if (err instanceof ConfigError) return { auth: fail(describe(err)) };
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : describe(err);
  if (!offered) return { connect: fail(`cannot connect to ${address}: ${cause}`) };
  if (!offered.verdict.ok) {
    const seen = offered.fingerprint;
    const problem = vessel.hostKey
      ? `host key ${seen} is not the one HostKey = pins (${vessel.hostKey}); refused`
      : `host key changed: recorded ${records.hostKey(`${vessel.address}:${vessel.port}`) ?? '(unknown)'}, now offered ${seen}; refused (if the change is expected, pin the new key with HostKey = ${seen})`;
    return { connect: ok(), hostKey: fail(problem) };
  }
  const auth = err instanceof VesselRefusedError
    ? `authentication as ${vessel.username} failed (${cause})`
    : `logging in or opening SFTP failed: ${describe(err)}`;
  return { connect: ok(), hostKey: hostKeyStep(vessel, offered), auth: fail(auth) };
}

function hostKeyStep(vessel: VesselSettings, offered: { fingerprint: string; verdict: HostKeyVerdict } | undefined): StepResult {
  if (!offered?.verdict.ok || !offered.verdict.firstUse) return ok();
  const fp = offered.fingerprint;
  return {
    state: 'new',
    problems: [],
    notes: [`host key ${fp} is new: it will be recorded on the first run (to pin it, add HostKey = ${fp} to [Vessel ${vessel.name}])`],
  };
}

/** Whether commands run at all (as the daemon proves it), then TempDir, the tools and the RemoteLocations from one remote script. */
async function probe(
  connection: SftpConnection, vessel: VesselSettings, received: DirectorySettings[], log?: Logger,
): Promise<Partial<Record<CheckStep, StepResult>>> {
  try {
    const proof = await proveCommands(connection, vessel.name);
    log?.debug({ vessel: vessel.name, checker: proof.checker }, 'commands run');
  } catch (err) {
    // Said once, in its own column: the other remote steps cannot be tried.
    return { commands: fail(describe(err).replace(`vessel ${vessel.name} `, '')) };
  }
  const script = checkProbeScript(vessel.tempDir, received.map((d) => d.remoteLocation));
  let found: CheckProbe | undefined;
  let why: string;
  try {
    const r = await connection.exec(script);
    log?.debug({ vessel: vessel.name, code: r.code, stdout: r.stdout, stderr: r.stderr }, 'check script ran');
    found = parseCheckProbe(r.stdout, received.length);
    why = `the check script did not run on the vessel (exit ${r.code ?? r.signal}${r.stderr ? `: ${oneLine(r.stderr)}` : ''})`;
  } catch (err) {
    why = `the check script did not run on the vessel: ${describe(err)}`;
  }
  if (!found) return { commands: ok(), tempDir: fail(why) };
  const locations = received.map((d, i) => folderStep(`RemoteLocation ${shownPath(d.remoteLocation)} of [Directory ${d.name}]`, d.remoteLocation, found.locations[i]));
  locations.push(await sameStorageStep(connection, received)); // a RemoteLocation that is the shore's own Location
  const remoteLocations = locations.some((l) => l.state === 'fail')
    ? fail(...locations.flatMap((l) => l.problems))
    : ok([
      ...locations.flatMap((l) => l.notes),
      ...(received.length === 0 ? ['receives no Directory (every one is in IgnoreDirs)'] : []),
    ]);
  const tools = [toolProblem('cat', found.cat, probeInput), toolProblem('sha256sum', found.sha256sum, probeSha256)].filter((p) => p !== undefined);
  return {
    commands: ok(),
    tempDir: folderStep(`TempDir ${shownPath(vessel.tempDir)}`, vessel.tempDir, found.tempDir),
    tools: tools.length ? fail(...tools) : ok(),
    remoteLocations,
  };
}

function folderStep(what: string, path: string, p: FolderProbe): StepResult {
  const at = shownPath(ancestor(path, p.missingLevels));
  if (p.state === 'ok') return ok(p.missingLevels ? [`${what} does not exist yet; it will be created (${at} is writable)`] : []);
  if (p.state === 'notdir') return fail(p.missingLevels ? `${what} cannot be created: ${at} is not a folder` : `${what} is not a folder`);
  const reason = oneLine(p.reason) || 'cannot create a file there';
  return fail(p.missingLevels
    ? `${what} is not writable: it does not exist, and ${at}, where it would be created, is not writable: ${reason}`
    : `${what} is not writable: ${reason}`);
}

function toolProblem(name: string, p: CommandProbe, expected: string): string | undefined {
  switch (p.state) {
    case 'ok': return undefined;
    case 'missing': return `${name} not found on the vessel (it is in coreutils)`;
    case 'exit': return `${name} does not work: \`printf ${probeInput} | ${name}\` exited with ${p.code}${p.output ? `: ${oneLine(p.output)}` : ''}`;
    case 'wrong': return `${name} does not work: \`printf ${probeInput} | ${name}\` printed \`${oneLine(p.output)}\`, expected \`${expected}\``;
  }
}

/** `path` without its last `levels` components. */
function ancestor(path: string, levels: number): string {
  const parts = path.split('/');
  return parts.slice(0, Math.max(1, parts.length - levels)).join('/') || '/';
}

/** Safety net: a secret never reaches the output, whatever message carried it. */
function redacted(check: VesselCheck, vessel: VesselSettings): VesselCheck {
  const secrets = [vessel.password, vessel.passphrase].filter((s): s is string => Boolean(s));
  if (secrets.length === 0) return check;
  const scrub = (line: string) => secrets.reduce((l, s) => l.split(s).join('[redacted]'), line);
  for (const step of Object.values(check.steps)) {
    step.problems = step.problems.map(scrub);
    step.notes = step.notes.map(scrub);
  }
  return check;
}
