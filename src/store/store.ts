import type { BuildEvent, EventDraft } from '../builds/build-event.js'
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
  | { kind: 'created', build: Build, event: BuildEvent }
  | { kind: 'replayed', build: Build }
  | { kind: 'mismatch' }

export interface BuildQuery {
  stream?: string | undefined
  state?: BuildState | undefined
  limit: number
  /** Return builds older than this sequence number (keyset pagination). */
  beforeSeq?: number | undefined
}

type BuildFields = Pick<Build,
  'reason' | 'message' | 'exitCode' | 'configCommit' | 'containerId' | 'startedAt' | 'finishedAt' | 'cancelRequestedAt' |
  'result' | 'phase' | 'failedStep' | 'bootTest'> & { resultTokenHash: string }

/** Fields to set; null clears one. */
export type BuildPatch = { [K in keyof BuildFields]?: BuildFields[K] | null }

/** Fields that change without an event: none the world watches (state, phase, cancel, outcome). */
export type QuietPatch = Pick<BuildPatch, 'configCommit' | 'containerId' | 'message' | 'resultTokenHash'>

/** A committed change of a build, and the outbox event written with it. */
export interface BuildChange {
  build: Build
  event: BuildEvent
}

export interface EventQuery {
  limit: number
  stream?: string | undefined
  build?: string | undefined
}

export interface Store {
  ping(): Promise<void>
  close(): Promise<void>

  putStream(stream: Stream): Promise<{ stream: Stream, created: boolean }>
  getStream(name: string): Promise<Stream | undefined>
  /**
   * Removes a stream unless a build of it is queued or running (checked in
   * the same transaction); with `purge`, its finished builds and pins too,
   * whose ids it returns.
   */
  deleteStream(name: string, purge: boolean): Promise<{ outcome: 'deleted' | 'busy' | 'missing', purged: string[] }>
  listStreams(): Promise<Stream[]>

  // The writers of a build's state and phase below (insertBuild, transition,
  // claimNext) each append an outbox event in the same transaction. Only
  // src/builds/lifecycle.ts calls them (test/builds/lifecycle-owner.test.ts).

  /** A new queued build, with its `build.queued` event (none when the key replays an earlier build). */
  insertBuild(build: NewBuild, idempotency: IdempotencyClaim | undefined, event: EventDraft): Promise<InsertOutcome>
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

  /** Conditional change (of state, or of fields with `to` the same state) and its event; undefined when the build was not in `from`. */
  transition(id: string, from: readonly BuildState[], to: BuildState, patch: BuildPatch, event: EventDraft): Promise<BuildChange | undefined>
  /** Conditional update of fields no event is about; undefined when the build was not in `whenState`. */
  update(id: string, whenState: readonly BuildState[], patch: QuietPatch): Promise<Build | undefined>
  /**
   * Moves the oldest queued build whose stream has nothing running to
   * `running`, if fewer than `maxRunning` builds run. One cosa workdir has one
   * writer, so a stream never has two running builds.
   */
  claimNext(maxRunning: number, startedAt: string, phase: string, event: EventDraft): Promise<BuildChange | undefined>

  /** The newest outbox event's sequence number (0 when there is none). */
  latestEventSeq(): Promise<number>
  /** Outbox events after `seq`, oldest first. */
  eventsAfter(seq: number, query: EventQuery): Promise<BuildEvent[]>

  resultTokenHash(id: string): Promise<string | undefined>
  /** The running build a result token belongs to (tokens are forgotten when builds end). */
  buildByResultTokenHash(hash: string): Promise<string | undefined>
  /** Records what the container posted, while the build runs. */
  recordResult(id: string, posted: PostedResult): Promise<Build | undefined>
  postedResult(id: string): Promise<PostedResult | undefined>
  getMeta(id: string): Promise<string | undefined>

  /** Forgets idempotency keys made before `before`; returns how many. */
  pruneIdempotencyKeys(before: string): Promise<number>
  /** Deletes outbox events written before `before`; sequence numbers are never reused. */
  pruneEvents(before: string): Promise<number>
  /** Finished builds that finished before `before`, oldest first. */
  finishedBefore(before: string, limit: number): Promise<Build[]>
  /** Deletes finished builds' records (housekeeping); builds not finished are left alone. */
  deleteFinished(ids: string[]): Promise<number>

  /** Pins protect cosa builds of a stream from the store's retention. */
  setPin(stream: string, cosaBuildId: string, pinned: boolean, at: string): Promise<void>
  pinnedBuilds(stream: string): Promise<Set<string>>
}
