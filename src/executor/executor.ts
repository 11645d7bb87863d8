// What the build pipeline (src/builds/) asks of whatever runs a build: an
// engine takes a backend-neutral job, runs it as one workload it owns, and
// answers with neutral observations. Docker is one implementation
// (docker/docker-executor.ts); the tests have an in-memory one. Nothing here
// names a backend's types, so a second kind of engine is a new folder.
//
// The service reads and writes each stream's workdir as a directory of its
// own host (the store sync before a build; results, artifacts and the boot
// test's report after it). An engine either runs the job on that very
// directory (results then arrive over the API, POST /v1/builds/{id}/result
// with the build's token), or keeps the job's workdir itself and copies
// between the two: prepareWorkspace sends what the sync wrote, pullBuild
// brings back what the job left, and the job leaves its result in
// JOB_REPORT instead of posting it.

import type { Readable } from 'node:stream'

export type EngineErrorKind = 'unavailable' | 'not_found' | 'conflict' | 'invalid' | 'refused' | 'timeout'

/** Every failure of an engine call; the runner turns its kind into a build's failure reason. */
export class EngineError extends Error {
  readonly kind: EngineErrorKind
  constructor (kind: EngineErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'EngineError'
    this.kind = kind
  }
}

export interface EngineCapacity {
  cpus: number
  memoryBytes: number
}

export type SecurityProfile = 'unprivileged' | 'privileged'

/** Where things appear for a running build, whichever engine runs it. */
export const JOB_PATHS = {
  workdir: '/srv',
  config: '/run/cosa-buildd/config.git'
} as const

/**
 * Relative to the workdir: where a job whose engine keeps its own workdir
 * leaves its result, one line "<build id> <built|unchanged> <arch> <cosa
 * build id>", as it would have posted it.
 */
export const JOB_REPORT = '.cosa-buildd/report'

/**
 * What of the service's workdir a job must see (for an engine that keeps
 * its own copy): `paths`, relative to the workdir, as the service has them
 * (one the service lacks is removed there), and in `prune.dir`, no
 * directory but those named in `prune.keep`.
 */
export interface WorkspaceSync {
  paths: string[]
  prune: { dir: string, keep: string[] }
}

/** A file copied back from a job's workdir, hashed as it arrived. */
export interface PulledFile {
  /** Relative to the workdir. */
  path: string
  size: number
  sha256: string
}

/**
 * Which of a stream's workdirs: the primary arch's (`arch` unset), or that of
 * a secondary arch of a multi-arch build. Each arch has its own, as cosa's
 * multi-arch pipeline has one per builder: an arch's cache and
 * builds/<id>/<arch> never meet another's.
 */
export interface Workspace {
  stream: string
  arch?: string | undefined
}

/** One build's run, as any engine takes it (`arch`: its workspace's, see Workspace). */
export interface BuildJob extends Workspace {
  buildId: string
  image: string
  /** A bash program: the stream's recipe, rendered. */
  script: string
  /** The token the build posts its result with. */
  resultToken: string
  /** The stream's secrets, as environment variables of the build. */
  env?: Record<string, string> | undefined
  resources: { memoryBytes: number, cpus: number, pids: number }
  profile: SecurityProfile
  /** The network the build may use ("none" by default). */
  network: string
}

/** A job as the engine sees it now. */
export interface JobState {
  id: string
  running: boolean
  /** Someone is deleting it: as good as gone. */
  removing: boolean
  exitCode: number
  oomKilled: boolean
}

/** A workload this installation owns, found by its labels. */
export interface OwnedJob {
  id: string
  name: string
  buildId: string
}

export type LogStream = 'stdout' | 'stderr'

/** One message of a job's log. */
export interface LogFrame {
  stream: LogStream
  /** RFC 3339 with nanoseconds, always 9 digits: it sorts as text. */
  ts: string
  /** The message, with its newline when it ends a line. */
  data: Buffer
}

/**
 * The job's log as the engine holds it at one moment (not followed), in
 * batches of frames, read at the caller's pace; destroy() ends it early, and
 * with an error makes the reader's iteration throw it.
 */
export interface LogSnapshot extends AsyncIterable<LogFrame[]> {
  destroy: (err?: Error) => void
}

export interface LogSnapshotOptions {
  /** "seconds.nanoseconds", inclusive. */
  since?: string | undefined
  /** At most the last this many lines. */
  tail?: number | undefined
}

export interface Executor {
  /** The engine's name, recorded on every build it runs. */
  readonly name: string
  /** Rejects when the engine does not answer; `signal` may end the wait sooner than the call's deadline. */
  ping: (signal?: AbortSignal) => Promise<void>
  /** The engine software's version, for operators (GET /v1/engines); rejects as ping does. */
  version: (signal?: AbortSignal) => Promise<string>
  /** The architecture the engine runs builds on, as cosa names it (basearch: x86_64, aarch64…). */
  arch: () => Promise<string>
  /** What the engine can give one job. */
  capacity: () => Promise<EngineCapacity>
  /** The user the image runs as ("" for root), or undefined when the image is not on the engine. */
  imageUser: (image: string) => Promise<string | undefined>
  /**
   * The stream's workdir as the service reads and writes it (the store sync,
   * results, artifacts). `arch`: a multi-arch build's secondary arch, which
   * has a workdir of its own (see Workspace); unset, the primary's.
   */
  workdir: (stream: string, arch?: string) => string
  /**
   * Makes the stream's workdir, as the service prepared it, the job's:
   * usable by the image's user and, where the engine keeps its own, with
   * `sync` applied to it.
   */
  prepareWorkspace: (input: Workspace & { image: string, user: string, buildId: string, sync: WorkspaceSync }) => Promise<void>
  /**
   * After the job ended: `paths` (relative to the workdir; directories whole)
   * copied from the job's workdir into the service's, replacing what was
   * there (a path the job lacks is removed); the files that came. Undefined
   * when the job works in the service's own directory: nothing to copy, and
   * its result arrived over the API. `signal` ends the copy.
   */
  pullBuild: (input: Workspace & { jobId: string, paths: string[], signal?: AbortSignal }) => Promise<PulledFile[] | undefined>
  /**
   * The job's own upload of `paths` of its workdir (a tar, its entries named
   * relative to the workdir), written into the service's copy as pullBuild
   * writes; the files that came. Undefined when the job works in the
   * service's own directory: nothing to take. An archive holding anything
   * else rejects with EngineError `invalid`.
   */
  receiveBuild: (input: Workspace & { archive: Readable, paths: string[] }) => Promise<PulledFile[] | undefined>
  /** Deletes what the engine keeps of the stream's workdir (nothing when it keeps none); already gone is fine. */
  removeWorkspace: (stream: string, arch?: string) => Promise<void>
  /**
   * Creates the build's job, not yet started; its id. A job the build
   * already has (made by an attempt that died before recording it) is reused.
   */
  create: (job: BuildJob) => Promise<string>
  start: (id: string) => Promise<void>
  /**
   * Resolves with the exit status once the job is not running; `signal`
   * bounds the wait. A wait that breaks rejects: callers inspect again
   * rather than assume an exit.
   */
  wait: (id: string, signal: AbortSignal) => Promise<number>
  /** Undefined when there is no such job. */
  inspect: (id: string) => Promise<JobState | undefined>
  /** The build's job, found without its id. */
  findByBuild: (buildId: string) => Promise<JobState | undefined>
  logSnapshot: (id: string, opts: LogSnapshotOptions, signal: AbortSignal) => Promise<LogSnapshot>
  /** Asks the job to end, and ends it after `graceSeconds`. Already ended or gone is fine. */
  stop: (id: string, graceSeconds: number) => Promise<void>
  /** Deletes the job and what the engine kept of it. Already gone is fine. */
  remove: (id: string) => Promise<void>
  /** Every job of this installation on the engine, whatever its state. */
  listOwned: () => Promise<OwnedJob[]>
}
