import type { BuildEvent, EventDraft } from '../builds/build-event.js'
import type { BuildState } from '../builds/build-state.js'
import type { ArchRun, Build, PostedResult, Stream } from '../builds/model.js'
import type { Marks } from '../logs/log-store.js'
import type { EngineRecord } from '../engines/model.js'
import type { Attempt, AttemptOutcome, Delivery, DueDelivery, NewDelivery, WebhookInput, WebhookRecord } from '../webhooks/model.js'

// Persistence as one repository per aggregate, each implemented once over a
// SqlClient (sql-client.ts) that is SQLite or PostgreSQL (open-database.ts).
// test/store/contract.ts defines their behaviour on both.

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
  'reason' | 'message' | 'exitCode' | 'configCommit' | 'containerId' | 'engine' | 'arch' | 'startedAt' | 'finishedAt' |
  'cancelRequestedAt' | 'result' | 'phase' | 'failedStep' | 'bootTest' | 'attempts' | 'arches'> &
  // outcome and metaJson: a posted result, cleared when an attempt is retried.
  { resultTokenHash: string, outcome: PostedResult['outcome'], metaJson: string }

/** Fields to set; null clears one. */
export type BuildPatch = { [K in keyof BuildFields]?: BuildFields[K] | null }

/** Fields that change without an event: none the world watches (state, phase, cancel, outcome). */
export type QuietPatch = Pick<BuildPatch, 'configCommit' | 'containerId' | 'engine' | 'arch' | 'message' | 'resultTokenHash' | 'arches'>

/** The one build a claim may start, and the engine it goes to (placement, src/engines/placement.ts). */
export interface Placed {
  id: string
  engine: string
  arch: string
  /** The engine's capacity: the claim fails when it already runs this many builds. */
  capacity: number
}

/** A committed change of a build, and the outbox event written with it. */
export interface BuildChange {
  build: Build
  event: BuildEvent
}

/** Who takes a lease, and for how long (by the database's clock). */
export interface LeaseTerms {
  owner: string
  ms: number
}

/** A build just claimed or taken over, and the fencing token its supervisor writes with. */
export interface Claimed extends BuildChange {
  token: number
}

export interface EventQuery {
  limit: number
  stream?: string | undefined
  build?: string | undefined
}

export interface StreamRepository {
  putStream(stream: Stream): Promise<{ stream: Stream, created: boolean }>
  getStream(name: string): Promise<Stream | undefined>
  /**
   * Removes a stream unless a build of it is queued or running (checked in
   * the same transaction); with `purge`, its finished builds and pins too,
   * whose ids it returns.
   */
  deleteStream(name: string, purge: boolean): Promise<{ outcome: 'deleted' | 'busy' | 'missing', purged: string[] }>
  listStreams(): Promise<Stream[]>
}

/** Builds, and the queue they form. */
export interface BuildRepository {
  // The writers of a build's state and phase below (insertBuild, transition,
  // claimNext) each append an outbox event in the same transaction. Only
  // src/builds/lifecycle.ts calls them (test/builds/lifecycle-owner.test.ts).

  /** A new queued build, with its `build.queued` event (none when the key replays an earlier build). */
  insertBuild(build: NewBuild, idempotency: IdempotencyClaim | undefined, event: EventDraft): Promise<InsertOutcome>
  getBuild(id: string): Promise<Build | undefined>
  listBuilds(query: BuildQuery): Promise<Build[]>
  buildsInState(states: BuildState[]): Promise<Build[]>
  /** The oldest queued build of each stream, oldest first: the only ones that may start next (a stream's builds run in order). */
  queueHeads(): Promise<Build[]>
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

  /**
   * Conditional change (of state, or of fields with `to` the same state) and
   * its event; undefined when the build was not in `from`, or, with `fence`,
   * when its lease token is no longer `fence` (checked in the same statement).
   */
  transition(id: string, from: readonly BuildState[], to: BuildState, patch: BuildPatch, event: EventDraft,
    fence?: number): Promise<BuildChange | undefined>
  /** Conditional update of fields no event is about; undefined when the build was not in `whenState` (or not under `fence`). */
  update(id: string, whenState: readonly BuildState[], patch: QuietPatch, fence?: number): Promise<Build | undefined>
  /**
   * Moves the oldest queued build whose stream has nothing running to
   * `running`, if fewer than `maxRunning` builds run. One cosa workdir has one
   * writer, so a stream never has two running builds (on PostgreSQL a unique
   * index holds that against concurrent claimers too). The claim takes the
   * build's lease for `lease.owner`, with a new fencing token. With `placed`,
   * only that build, and only while its engine runs fewer than its capacity.
   */
  claimNext(maxRunning: number, startedAt: string, phase: string, event: EventDraft, lease: LeaseTerms, placed?: Placed): Promise<Claimed | undefined>
  /**
   * A running multi-arch build's next arch (fenced): the engine and arch it
   * moves to and its arches record, with nothing left of the last arch's run
   * (job, result token, posted result, message); only while that engine runs fewer
   * than `to.capacity` other builds ('full' otherwise; undefined when the
   * fence no longer holds).
   */
  moveArch(id: string, to: Omit<Placed, 'id'>, arches: ArchRun[], fence: number): Promise<Build | 'full' | undefined>
  /** The engine of the stream's newest build on `arch` that had one (a multi-arch build's, for each of its arches): where its workdir and cache are. */
  homeEngine(stream: string, arch: string): Promise<string | undefined>

  resultTokenHash(id: string): Promise<string | undefined>
  /** The running build a result token belongs to (tokens are forgotten when builds end). */
  buildByResultTokenHash(hash: string): Promise<string | undefined>
  /** Records what the container posted, while the build runs. */
  recordResult(id: string, posted: PostedResult): Promise<Build | undefined>
  postedResult(id: string): Promise<PostedResult | undefined>
  getMeta(id: string): Promise<string | undefined>

  /** Finished builds that finished before `before`, oldest first. */
  finishedBefore(before: string, limit: number): Promise<Build[]>
  /** Deletes finished builds' records (housekeeping); builds not finished are left alone. */
  deleteFinished(ids: string[]): Promise<number>
}

/** Idempotency keys are written with their build (BuildRepository.insertBuild); this forgets them. */
export interface IdempotencyRepository {
  /** Forgets idempotency keys made before `before`; returns how many. */
  pruneIdempotencyKeys(before: string): Promise<number>
}

/** Pins protect cosa builds of a stream from the store's retention. */
export interface PinRepository {
  setPin(stream: string, cosaBuildId: string, pinned: boolean, at: string): Promise<void>
  pinnedBuilds(stream: string): Promise<Set<string>>
}

/** The outbox: every change of a build, in commit order. */
export interface EventRepository {
  /** The newest outbox event's sequence number (0 when there is none). */
  latestEventSeq(): Promise<number>
  /** Outbox events after `seq`, oldest first. */
  eventsAfter(seq: number, query: EventQuery): Promise<BuildEvent[]>
  /** Deletes outbox events written before `before`; sequence numbers are never reused. */
  pruneEvents(before: string): Promise<number>
}

/** Webhooks, their cursors into the outbox, and their deliveries. */
export interface WebhookRepository {
  getWebhook(name: string): Promise<WebhookRecord | undefined>
  listWebhooks(): Promise<WebhookRecord[]>
  insertWebhook(webhook: WebhookRecord): Promise<void>
  /** Changes what a webhook is and enables it; `secret` replaces the secret, `cursor` moves it (re-enabling). */
  updateWebhook(name: string, input: WebhookInput, at: string, change: { secret?: string, cursor?: number }): Promise<WebhookRecord | undefined>
  disableWebhook(name: string, reason: string, at: string): Promise<void>
  /** Removes the webhook and its deliveries. */
  deleteWebhook(name: string): Promise<boolean>

  /**
   * Moves a webhook's cursor from `from` to `to` and writes the deliveries of
   * the events in between, in one transaction: false (nothing written) when
   * the cursor was no longer `from`. So no event is skipped or delivered twice.
   */
  enqueue(name: string, from: number, to: number, deliveries: NewDelivery[], at: string): Promise<boolean>
  /** Pending deliveries of enabled webhooks due by `now`, oldest first, not those in `skip`. */
  dueDeliveries(now: string, limit: number, skip: string[]): Promise<DueDelivery[]>
  /** When the next pending delivery of an enabled webhook is due. */
  nextDueAt(): Promise<string | undefined>
  /** When the oldest delivery still pending (of an enabled webhook) was made: how far behind receivers are. */
  oldestPendingAt(): Promise<string | undefined>
  recordAttempt(id: string, attempt: Attempt, outcome: AttemptOutcome): Promise<void>
  /** Newest first. */
  listDeliveries(webhook: string, limit: number): Promise<Delivery[]>
  getDelivery(webhook: string, id: string): Promise<Delivery | undefined>
  /** Makes a delivery pending and due at `at`, its retry schedule from the start; its attempts stay. */
  redeliver(webhook: string, id: string, at: string): Promise<Delivery | undefined>
  /** Deletes delivered and failed deliveries made, and last tried, before `before`, with their attempts; how many. */
  pruneDeliveries(before: string): Promise<number>
}

export interface LogChunk {
  /** Where the chunk starts in the log, in bytes. */
  offset: number
  data: Buffer
}

export interface LogCheckpoint {
  bytes: number
  marks: Marks
}

/** One write of a log, in one transaction. */
export interface LogAppend {
  /** First drops the chunks at or past this offset (what came after the checkpoint). */
  cutTo?: number | undefined
  chunks: LogChunk[]
  checkpoint?: LogCheckpoint | undefined
}

/** Build logs as contiguous chunks (src/logs/database-log-store.ts); a second writer of one offset is refused. */
export interface LogRepository {
  /** The log's length: where its last chunk ends. */
  size(buildId: string): Promise<number>
  checkpoint(buildId: string): Promise<LogCheckpoint | undefined>
  cutTo(buildId: string, bytes: number): Promise<void>
  append(buildId: string, change: LogAppend): Promise<void>
  /** The chunk that holds byte `position`. */
  chunkAt(buildId: string, position: number): Promise<LogChunk | undefined>
  putAttachment(buildId: string, name: string, data: Buffer): Promise<void>
  getAttachment(buildId: string, name: string): Promise<Buffer | undefined>
  /** The log, its checkpoint and attachments. */
  remove(buildId: string): Promise<void>
}

/**
 * Leases (issue #14): a running build is supervised by the one replica that
 * holds its lease, and every write of its supervisor carries the lease's
 * fencing token (BuildRepository.transition/update `fence`). Singleton
 * duties run under lease rows of their own.
 */
export interface LeaseRepository {
  /** Extends a build's lease while `terms.owner` holds it under `token`; undefined when it does not any more (lost). */
  renew(buildId: string, token: number, terms: LeaseTerms): Promise<{ cancelRequested: boolean } | undefined>
  /**
   * Running builds `owner` may take over: their lease expired, they have none
   * (from before leases), or `owner` holds it (a restarted replica with the
   * same id), each with its current token (0 for none).
   */
  adoptable(owner: string): Promise<Array<{ build: Build, token: number }>>
  /** Takes the lease of a build still under `token` and still adoptable, with a new token; undefined when another was first. */
  takeOver(buildId: string, token: number, terms: LeaseTerms): Promise<{ build: Build, token: number } | undefined>
  /** Lets a lease expire now (a graceful detach), so that another replica adopts the build at once. */
  release(buildId: string, token: number): Promise<boolean>
  /** Holds the singleton duty `name` for `terms.ms` more: its token while `terms.owner` holds it, undefined while another does. */
  holdDuty(name: string, terms: LeaseTerms): Promise<number | undefined>
  releaseDuty(name: string, owner: string): Promise<void>
}

/** The engines admins added, the config file's as of the last start, and their drain flags. */
export interface EngineRepository {
  listEngines(): Promise<EngineRecord[]>
  getEngine(name: string): Promise<EngineRecord | undefined>
  /** Creates or changes an engine's settings; its drain flag and creation time stay. */
  putEngine(engine: Omit<EngineRecord, 'draining' | 'createdAt' | 'updatedAt'>, at: string): Promise<{ engine: EngineRecord, created: boolean }>
  setDraining(name: string, draining: boolean, at: string): Promise<EngineRecord | undefined>
  deleteEngine(name: string): Promise<boolean>
}

/** The service's database: SQLite in the data directory, or PostgreSQL (open-database.ts). */
export interface Database {
  readonly dialect: 'sqlite' | 'postgres'
  readonly streams: StreamRepository
  readonly builds: BuildRepository
  readonly idempotency: IdempotencyRepository
  readonly pins: PinRepository
  readonly events: EventRepository
  readonly webhooks: WebhookRepository
  readonly logs: LogRepository
  readonly leases: LeaseRepository
  readonly engines: EngineRepository
  /** Tells the other replicas that the queue changed (a hint: PostgreSQL NOTIFY; nothing on SQLite). */
  hintQueue(): Promise<void>
  /** Calls `fn` when a replica hints that the queue changed, and after a reconnect of the listener; returns the stop. */
  onQueueHint(fn: () => void): () => Promise<void>
  /** Tells the other replicas that a cancel of this running build was requested (a hint, like hintQueue). */
  hintCancel(buildId: string): Promise<void>
  /** Calls `fn` with the build when a replica hints that its cancel was requested; returns the stop. */
  onCancelHint(fn: (buildId: string) => void): () => Promise<void>
  ping(): Promise<void>
  close(): Promise<void>
}
