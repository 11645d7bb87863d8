import type { Publisher } from '../../artifacts/publisher.js'
import type { Config } from '../../config.js'
import { DEFAULT_RECIPE } from '../../cosa/recipe.js'
import type { DataDir } from '../../data-dir.js'
import type { ConfigMirror } from '../../git/config-mirror.js'
import type { Logger } from '../../logger.js'
import type { DockerEngine } from '../../runner/docker-engine.js'
import type { Store } from '../../store/store.js'
import type { BuildLogs } from '../build-logs.js'
import type { BuildLifecycle, Final } from '../lifecycle.js'
import type { LogPump } from '../log-pump.js'
import type { SecretRedactor } from '../log-sanitizer.js'
import type { Build, Stream } from '../model.js'

// What every step of a build's run (prepare, execute, supervise, publish) is
// given: the services, the build and its stream, a logger bound to the build,
// and the signals that end the run early.

export interface RunnerDeps {
  store: Store
  lifecycle: BuildLifecycle
  engine: DockerEngine
  mirror: ConfigMirror
  publisher: Publisher
  logs: BuildLogs
  dataDir: DataDir
  config: Config
  logger: Logger
  owner: string
  now: () => Date
}

export interface RunContext {
  deps: RunnerDeps
  build: Build
  /** Undefined only for an adopted build whose stream was deleted meanwhile. */
  stream: Stream | undefined
  log: Logger
  /** Aborts when a cancel was requested (the supervisor stops the container). */
  cancel: AbortSignal
  /** Aborts at service shutdown: the run detaches and leaves the container to the next start. */
  shutdown: AbortSignal
  pump: LogPump
  /** What the build's log must never show (the stream's secrets, the result token). */
  redactor: SecretRedactor
  /** Called with each step marker the build prints. */
  onStep: (line: string) => void
  /** Settles once every phase heard so far is written (before the final state). */
  phasesWritten: () => Promise<void>
}

export const recipeOf = (stream: Stream) => stream.recipe.length ? stream.recipe : DEFAULT_RECIPE
export const platformsOf = (build: Build, stream: Stream) => build.request.platforms ?? stream.platforms

export { failed } from '../lifecycle.js'

/** A step either hands on its product or ends the build. */
export const isFinal = (x: object): x is Final => 'state' in x
