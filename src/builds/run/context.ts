import type { Publisher } from '../../artifacts/publisher.js'
import type { Config } from '../../config.js'
import { DEFAULT_RECIPE } from '../../cosa/recipe.js'
import type { DataDir } from '../../data-dir.js'
import type { ConfigMirror } from '../../git/config-mirror.js'
import type { Logger } from '../../logger.js'
import type { EngineRegistry } from '../../executor/engine-registry.js'
import type { Executor } from '../../executor/executor.js'
import type { Database, Placed } from '../../store/repositories.js'
import type { LogStore } from '../../logs/log-store.js'
import type { WorkdirUploads } from '../workdir-upload.js'
import type { ResultIntake } from '../result-intake.js'
import type { BuildLifecycle, Final } from '../lifecycle.js'
import type { LogPump } from '../log-pump.js'
import type { SecretRedactor } from '../log-sanitizer.js'
import type { Build, Stream } from '../model.js'
import { secondaryArch } from './arches.js'

// What every step of a build's run (prepare, execute, supervise, publish) is
// given: the services, the build and its stream, a logger bound to the build,
// and the signals that end the run early.

export interface RunnerDeps {
  store: Database
  lifecycle: BuildLifecycle
  /** Where builds run: the runner asks it for a build's engine. */
  engines: EngineRegistry
  mirror: ConfigMirror
  publisher: Publisher
  /** Takes the result a job left in its workdir (run/collect.ts) as if it had posted it. */
  results: Pick<ResultIntake, 'accept'>
  /** What a job on an engine with its own workdir uploaded itself (run/collect.ts takes it instead of copying). */
  uploads: Pick<WorkdirUploads, 'take' | 'forget'>
  logs: LogStore
  dataDir: DataDir
  config: Config
  logger: Logger
  now: () => Date
  /**
   * Where a multi-arch build's next arch runs now, or why it waits: the
   * scheduler's placement (Scheduler.placeArch). Unset (unit tests): the
   * first engine of the arch.
   */
  placeArch?: ((build: Build, arch: string, waitedMs: number) => Promise<ArchPlacement>) | undefined
}

/** An engine with room for a build's next arch, or why there is none. */
export type ArchPlacement = { placed: Omit<Placed, 'id'>, executor: Executor } | { waiting: string }

export interface RunContext {
  deps: RunnerDeps
  build: Build
  /** The engine that runs the build. */
  executor: Executor
  /** Undefined only for an adopted build whose stream was deleted meanwhile. */
  stream: Stream | undefined
  log: Logger
  /** Aborts when a cancel was requested (the supervisor stops the job). */
  cancel: AbortSignal
  /** Aborts at service shutdown: the run detaches and leaves the job to the next start. */
  shutdown: AbortSignal
  pump: LogPump
  /** What the build's log must never show (the stream's secrets, the result token). */
  redactor: SecretRedactor
  /** Whether the build's log may still be written here (its lease is surely still this process's). */
  mayWrite: () => boolean
  /** Called with each step marker the build prints. */
  onStep: (line: string) => void
  /** Settles once every phase heard so far is written (before the final state). */
  phasesWritten: () => Promise<void>
}

export const recipeOf = (stream: Stream) => stream.recipe.length ? stream.recipe : DEFAULT_RECIPE
/** The workdir of the arch the build runs now, as the service reads and writes it. */
export const workdirOf = (ctx: Pick<RunContext, 'build' | 'executor'>) => ctx.executor.workdir(ctx.build.stream, secondaryArch(ctx.build))
export const platformsOf = (build: Build, stream: Stream) => build.request.platforms ?? stream.platforms

export { failed } from '../lifecycle.js'

/** A step either hands on its product or ends the build. */
export const isFinal = (x: object): x is Final => 'state' in x
