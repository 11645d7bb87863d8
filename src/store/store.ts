import type { BuildState } from '../builds/build-state.js'
import type { Build, PostedResult, Stream } from '../builds/model.js'

// Persistence behind one interface, so that a PostgreSQL implementation can
// join the SQLite one. Methods are async for that reason even where SQLite is
// synchronous.

export interface NewBuild {
  id: string
  stream: string
  request: Build['request']
  createdAt: string
}

export interface IdempotencyClaim {
  /** Who sent it (a hash of the token, or "anonymous"): keys never match across clients. */
  scope: string
  key: string
  fingerprint: string
}

export type InsertOutcome =
  | { kind: 'created', build: Build }
  | { kind: 'replayed', build: Build }
  | { kind: 'mismatch' }

export interface BuildQuery {
  stream?: string | undefined
  state?: BuildState | undefined
  limit: number
  /** Return builds older than this sequence number (keyset pagination). */
  beforeSeq?: number | undefined
}

export type BuildPatch = Partial<Pick<Build,
  'reason' | 'message' | 'exitCode' | 'configCommit' | 'containerId' | 'startedAt' | 'finishedAt' | 'cancelRequestedAt' |
  'result'>> & {
  resultTokenHash?: string
}

export interface Store {
  ping(): Promise<void>
  close(): Promise<void>

  putStream(stream: Stream): Promise<{ stream: Stream, created: boolean }>
  getStream(name: string): Promise<Stream | undefined>
  listStreams(): Promise<Stream[]>

  insertBuild(build: NewBuild, idempotency?: IdempotencyClaim): Promise<InsertOutcome>
  getBuild(id: string): Promise<Build | undefined>
  listBuilds(query: BuildQuery): Promise<Build[]>
  buildsInState(states: BuildState[]): Promise<Build[]>
  /**
   * Where a queued build stands. `streamBusy`: its stream has a build running
   * or an older one queued, which go first (one workdir, one writer). Then
   * `position` is its place in its stream's queue (builds of other streams
   * may start meanwhile). Otherwise it counts the older queued builds, and
   * this one: a claim takes the oldest build whose stream is free, so no
   * newer build starts before it, and those older ones at most (one whose
   * stream is busy when a slot frees goes later). 1 is next.
   */
  queueState(build: Build): Promise<{ position: number, streamBusy: boolean }>
  /** How many builds are queued and running, per stream (streams with none are left out). */
  activeCounts(): Promise<Array<{ stream: string, state: 'queued' | 'running', count: number }>>
  /** The newest build of the stream that made or pointed at a cosa build. */
  latestResult(stream: string): Promise<Build | undefined>

  /** Conditional state change; undefined when the build was not in `from`. A final state forgets the result token. */
  transition(id: string, from: readonly BuildState[], to: BuildState, patch?: BuildPatch): Promise<Build | undefined>
  /** Conditional field update; undefined when the build was not in `whenState`. */
  update(id: string, whenState: readonly BuildState[], patch: BuildPatch): Promise<Build | undefined>
  /**
   * Moves the oldest queued build whose stream has nothing running to
   * `running`, if fewer than `maxRunning` builds run. One cosa workdir has one
   * writer, so a stream never has two running builds.
   */
  claimNext(maxRunning: number, startedAt: string): Promise<Build | undefined>

  resultTokenHash(id: string): Promise<string | undefined>
  /** The running build a result token belongs to (tokens are forgotten when builds end). */
  buildByResultTokenHash(hash: string): Promise<string | undefined>
  /** Records what the container posted, while the build runs. */
  recordResult(id: string, posted: PostedResult): Promise<Build | undefined>
  postedResult(id: string): Promise<PostedResult | undefined>
  getMeta(id: string): Promise<string | undefined>

  /** Pins protect cosa builds of a stream from the store's retention. */
  setPin(stream: string, cosaBuildId: string, pinned: boolean, at: string): Promise<void>
  pinnedBuilds(stream: string): Promise<Set<string>>
}
