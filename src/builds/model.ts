import type { BootTestRecord } from '../cosa/kola-report.js'
import type { BuildState, FailureReason } from './build-state.js'

/** Builds a stream keeps in the artifact store unless it says otherwise. */
export const DEFAULT_KEEP = 10

export interface StreamConfig {
  url: string
  ref: string
}

export interface StreamResources {
  memoryBytes?: number | undefined
  cpus?: number | undefined
  pids?: number | undefined
}

/** A stream's boot test (docs/boot-test.md): `cosa kola run basic` after the image steps of a new build. */
export interface BootTestSetting {
  enabled: boolean
  /** gate: a failed test fails the build (`boot_test`), nothing published; warn: published, the failure recorded. */
  mode: 'gate' | 'warn'
  /** Unset: kola's own default for the accelerator the boot ends up using (300 s TCG, 120 s KVM). */
  timeoutSeconds?: number | undefined
  memoryMiB: number
  allowFailedUnits?: string[] | undefined
}

export interface Stream {
  name: string
  config: StreamConfig
  image: string
  platforms: string[]
  /** The basearch its builds run on (one for now); unset: the default engine's. */
  arches?: string[] | undefined
  timeoutSeconds: number
  /** Builds kept in the artifact store, pinned ones not counted. */
  keep: number
  resources: StreamResources
  networkMode?: string | undefined
  recipe: string[][]
  /** Its published builds (cosa's layout, artifact downloads) may be read without a token. */
  publicRead?: boolean | undefined
  /** Environment variables of every build, redacted from its log; never shown by the API. */
  secrets?: Record<string, string> | undefined
  bootTest?: BootTestSetting | undefined
  createdAt: string
  updatedAt: string
}

export interface BuildRequest {
  force: boolean
  skipPrune: boolean
  version?: string | undefined
  commit?: string | undefined
  platforms?: string[] | undefined
}

export interface Artifact {
  name: string
  /** builds/<id>/<arch>/<file>: in the workdir, and under the stream in the store. */
  path: string
  sha256: string
  size: number
  /** The download route on this API; set once published. */
  url?: string | undefined
  /** Where the store keeps it (a path or an s3:// URL); set once published. */
  location?: string | undefined
}

/** A file of a published cosa build, meta.json's images among them. */
export interface PublishedFile {
  /** builds/<id>/<arch>/<file> or builds/<id>/<file>, under the stream in the store. */
  path: string
  sha256: string
  size: number
}

export interface BuildResult {
  cosaBuildId: string
  arch: string
  ostreeCommit: string
  artifacts: Artifact[]
  /** Every file the build published (set when it stored the build, not when it found it unchanged). */
  files?: PublishedFile[] | undefined
}

/** One run of a build on an engine, once it ended (docs/engines.md, "Retries"). */
export interface BuildAttempt {
  engine?: string | undefined
  arch?: string | undefined
  startedAt?: string | undefined
  endedAt: string
  /** How the attempt ended: the build's final state, or `failed` for one that was retried. */
  state: Exclude<BuildState, 'queued' | 'running'>
  reason?: FailureReason | undefined
  message?: string | undefined
  /** The phase it was in when it failed. */
  failedStep?: string | undefined
}

export interface Build {
  id: string
  seq: number
  stream: string
  state: BuildState
  reason?: FailureReason | undefined
  message?: string | undefined
  exitCode?: number | undefined
  request: BuildRequest
  configCommit?: string | undefined
  containerId?: string | undefined
  /** The engine that ran the build (its name in the engine registry); unset until one took it. */
  engine?: string | undefined
  /** The engine's architecture, as cosa names it (x86_64, aarch64, s390x, ppc64le). */
  arch?: string | undefined
  result?: BuildResult | undefined
  createdAt: string
  startedAt?: string | undefined
  finishedAt?: string | undefined
  cancelRequestedAt?: string | undefined
  /** While running: preparing, each recipe step as it starts (init, fetch, build, osbuild qemu…), publishing. */
  phase?: string | undefined
  /** A failed build: the phase it failed in. */
  failedStep?: string | undefined
  /** A new build of a stream with a boot test: what the test found. */
  bootTest?: BootTestRecord | undefined
  /** Each run on an engine that ended, oldest first: more than one when infrastructure failures were retried. */
  attempts?: BuildAttempt[] | undefined
  /** A build of a stream with several arches: each arch's run, the primary first (src/builds/run/arches.ts). */
  arches?: ArchRun[] | undefined
}

/** How far one arch of a multi-arch build got. */
export type ArchRunState = 'pending' | 'waiting' | 'running' | 'succeeded' | 'unchanged' | 'failed' | 'cancelled' | 'skipped'

/** One arch's run within a multi-arch build. */
export interface ArchRun {
  arch: string
  state: ArchRunState
  engine?: string | undefined
  startedAt?: string | undefined
  finishedAt?: string | undefined
  /** While waiting: why (no engine of the arch, every one busy). */
  waitingFor?: string | undefined
  reason?: FailureReason | undefined
  message?: string | undefined
  exitCode?: number | undefined
  /** The cosa build it made or found (succeeded, unchanged). */
  result?: BuildResult | undefined
  bootTest?: BootTestRecord | undefined
}

/** What a build's container reported through POST /v1/builds/{id}/result. */
export interface PostedResult {
  outcome: 'built' | 'unchanged'
  result: BuildResult
  metaJson: string
}
