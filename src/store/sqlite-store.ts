import type Database from 'better-sqlite3'
import { openDatabase } from './sqlite-database.js'
import { publicBuild, type BuildEvent, type EventDraft } from '../builds/build-event.js'
import type { BuildState } from '../builds/build-state.js'
import { terminalStates } from '../builds/build-state.js'
import { DEFAULT_KEEP, type Build, type PostedResult, type Stream } from '../builds/model.js'
import type {
  BuildChange, BuildPatch, BuildQuery, EventQuery, IdempotencyClaim, InsertOutcome, NewBuild, QuietPatch, Store
} from './store.js'

const migrations = [
  `CREATE TABLE streams (
     name TEXT PRIMARY KEY,
     doc TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE builds (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     stream TEXT NOT NULL,
     state TEXT NOT NULL,
     reason TEXT,
     message TEXT,
     exit_code INTEGER,
     request TEXT NOT NULL,
     config_commit TEXT,
     container_id TEXT,
     result TEXT,
     outcome TEXT,
     meta_json TEXT,
     result_token_hash TEXT,
     created_at TEXT NOT NULL,
     started_at TEXT,
     finished_at TEXT,
     cancel_requested_at TEXT
   );
   CREATE INDEX builds_state_seq ON builds (state, seq);
   CREATE INDEX builds_stream_seq ON builds (stream, seq);
   CREATE TABLE idempotency_keys (
     scope TEXT NOT NULL,
     key TEXT NOT NULL,
     fingerprint TEXT NOT NULL,
     build_id TEXT NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (scope, key)
   );`,
  `CREATE TABLE pins (
     stream TEXT NOT NULL,
     cosa_build_id TEXT NOT NULL,
     pinned_at TEXT NOT NULL,
     PRIMARY KEY (stream, cosa_build_id)
   );`,
  // AUTOINCREMENT: a sequence number is never reused, even after pruning,
  // so a reader resuming after seq N never misses or repeats an event.
  `ALTER TABLE builds ADD COLUMN phase TEXT;
   ALTER TABLE builds ADD COLUMN failed_step TEXT;
   CREATE TABLE events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     type TEXT NOT NULL,
     build_id TEXT NOT NULL,
     stream TEXT NOT NULL,
     time TEXT NOT NULL,
     build TEXT NOT NULL
   );
   CREATE INDEX events_build ON events (build_id, seq);
   CREATE INDEX events_stream ON events (stream, seq);`,
  'ALTER TABLE builds ADD COLUMN boot_test TEXT;'
]

const columns: Record<keyof BuildPatch, string> = {
  reason: 'reason',
  message: 'message',
  exitCode: 'exit_code',
  configCommit: 'config_commit',
  containerId: 'container_id',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  cancelRequestedAt: 'cancel_requested_at',
  result: 'result',
  resultTokenHash: 'result_token_hash',
  phase: 'phase',
  failedStep: 'failed_step',
  bootTest: 'boot_test'
}

type Row = Record<string, any>

const optional = <T>(v: T | null): T | undefined => (v === null ? undefined : v)

function toBuild (row: Row): Build {
  return {
    id: row.id,
    seq: row.seq,
    stream: row.stream,
    state: row.state,
    reason: optional(row.reason),
    message: optional(row.message),
    exitCode: optional(row.exit_code),
    request: JSON.parse(row.request),
    configCommit: optional(row.config_commit),
    containerId: optional(row.container_id),
    result: row.result ? JSON.parse(row.result) : undefined,
    createdAt: row.created_at,
    startedAt: optional(row.started_at),
    finishedAt: optional(row.finished_at),
    cancelRequestedAt: optional(row.cancel_requested_at),
    phase: optional(row.phase),
    failedStep: optional(row.failed_step),
    bootTest: row.boot_test ? JSON.parse(row.boot_test) : undefined
  }
}

const toEvent = (row: Row): BuildEvent =>
  ({ seq: row.seq, type: row.type, buildId: row.build_id, stream: row.stream, time: row.time, build: JSON.parse(row.build) })

// Streams registered before a field existed read as its default.
const toStream = (doc: string): Stream => ({ keep: DEFAULT_KEEP, ...JSON.parse(doc) })

// Everything a Build has; meta.json (up to megabytes) is read only when asked for.
const BUILD_COLUMNS = `seq, id, stream, state, reason, message, exit_code, request, config_commit, container_id,
  result, created_at, started_at, finished_at, cancel_requested_at, phase, failed_step, boot_test`

const placeholders = (n: number) => Array(n).fill('?').join(', ')

export class SqliteStore implements Store {
  readonly #db: Database.Database
  readonly #insertTx: (build: NewBuild, claim: IdempotencyClaim | undefined, event: EventDraft) => InsertOutcome
  readonly #changeTx: (write: () => Row | undefined, event: EventDraft) => BuildChange | undefined
  readonly #statements = new Map<string, Database.Statement>()

  // Preparing costs more than running these small queries: keep each once.
  #sql (text: string) {
    let stmt = this.#statements.get(text)
    if (!stmt) {
      stmt = this.#db.prepare(text)
      this.#statements.set(text, stmt)
    }
    return stmt
  }

  constructor (path: string) {
    this.#db = openDatabase(path)
    this.#migrate()
    this.#insertTx = this.#db.transaction(this.#insert)
    this.#changeTx = this.#db.transaction(this.#change)
  }

  /** The build as it is now, as an outbox event: written in the caller's transaction. */
  #appendEvent (build: Build, draft: EventDraft): BuildEvent {
    const data = publicBuild(build)
    const row = this.#sql('INSERT INTO events (type, build_id, stream, time, build) VALUES (?, ?, ?, ?, ?) RETURNING seq')
      .get(draft.type, build.id, build.stream, draft.time, JSON.stringify(data)) as Row
    return { seq: row.seq, type: draft.type, buildId: build.id, stream: build.stream, time: draft.time, build: data }
  }

  // A change and its event commit together or not at all.
  readonly #change = (write: () => Row | undefined, draft: EventDraft): BuildChange | undefined => {
    const row = write()
    if (!row) return undefined
    const build = toBuild(row)
    return { build, event: this.#appendEvent(build, draft) }
  }

  #migrate () {
    const version = this.#db.pragma('user_version', { simple: true }) as number
    for (const [i, sql] of migrations.entries()) {
      if (i < version) continue
      this.#db.transaction(() => {
        this.#db.exec(sql)
        this.#db.pragma(`user_version = ${i + 1}`)
      })()
    }
  }

  async ping () {
    this.#sql('SELECT 1').get()
  }

  async close () {
    this.#db.close()
  }

  async putStream (stream: Stream) {
    const existing = this.#sql('SELECT created_at FROM streams WHERE name = ?').get(stream.name) as Row | undefined
    const saved = { ...stream, createdAt: existing?.created_at ?? stream.createdAt }
    this.#sql(`INSERT INTO streams (name, doc, created_at, updated_at) VALUES (?, ?, ?, ?)
                      ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`)
      .run(saved.name, JSON.stringify(saved), saved.createdAt, saved.updatedAt)
    return { stream: saved, created: existing === undefined }
  }

  async getStream (name: string) {
    const row = this.#sql('SELECT doc FROM streams WHERE name = ?').get(name) as Row | undefined
    return row ? toStream(row.doc) : undefined
  }

  readonly #deleteStream = (name: string, purge: boolean) => {
    if (!this.#sql('SELECT 1 FROM streams WHERE name = ?').get(name)) return { outcome: 'missing' as const, purged: [] }
    if (this.#sql("SELECT 1 FROM builds WHERE stream = ? AND state IN ('queued', 'running') LIMIT 1").get(name)) {
      return { outcome: 'busy' as const, purged: [] }
    }
    this.#sql('DELETE FROM streams WHERE name = ?').run(name)
    if (!purge) return { outcome: 'deleted' as const, purged: [] }
    const purged = (this.#sql('DELETE FROM builds WHERE stream = ? RETURNING id').all(name) as Row[]).map((r) => r.id as string)
    this.#sql('DELETE FROM pins WHERE stream = ?').run(name)
    return { outcome: 'deleted' as const, purged }
  }

  async deleteStream (name: string, purge: boolean) {
    return this.#db.transaction(this.#deleteStream)(name, purge)
  }

  async listStreams () {
    return (this.#sql('SELECT doc FROM streams ORDER BY name').all() as Row[]).map((r) => toStream(r.doc))
  }

  // The key and the build are written in one transaction, so a crash never
  // leaves a key without its build or a build admitted twice.
  readonly #insert = (build: NewBuild, claim: IdempotencyClaim | undefined, event: EventDraft): InsertOutcome => {
    if (claim) {
      const prior = this.#sql('SELECT fingerprint, build_id FROM idempotency_keys WHERE scope = ? AND key = ?')
        .get(claim.scope, claim.key) as Row | undefined
      if (prior) {
        if (prior.fingerprint !== claim.fingerprint) return { kind: 'mismatch' }
        return { kind: 'replayed', build: this.#get(prior.build_id)! }
      }
    }
    this.#sql(`INSERT INTO builds (id, stream, state, request, created_at) VALUES (?, ?, 'queued', ?, ?)`)
      .run(build.id, build.stream, JSON.stringify(build.request), build.createdAt)
    if (claim) {
      this.#sql('INSERT INTO idempotency_keys (scope, key, fingerprint, build_id, created_at) VALUES (?, ?, ?, ?, ?)')
        .run(claim.scope, claim.key, claim.fingerprint, build.id, build.createdAt)
    }
    const created = this.#get(build.id)!
    return { kind: 'created', build: created, event: this.#appendEvent(created, event) }
  }

  async insertBuild (build: NewBuild, claim: IdempotencyClaim | undefined, event: EventDraft) {
    return this.#insertTx(build, claim, event)
  }

  #get (id: string) {
    const row = this.#sql(`SELECT ${BUILD_COLUMNS} FROM builds WHERE id = ?`).get(id) as Row | undefined
    return row ? toBuild(row) : undefined
  }

  async getBuild (id: string) {
    return this.#get(id)
  }

  async listBuilds (query: BuildQuery) {
    const where: string[] = []
    const args: unknown[] = []
    if (query.stream !== undefined) { where.push('stream = ?'); args.push(query.stream) }
    if (query.state !== undefined) { where.push('state = ?'); args.push(query.state) }
    if (query.beforeSeq !== undefined) { where.push('seq < ?'); args.push(query.beforeSeq) }
    const sql = `SELECT ${BUILD_COLUMNS} FROM builds ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq DESC LIMIT ?`
    return (this.#sql(sql).all(...args, query.limit) as Row[]).map(toBuild)
  }

  async buildsInState (states: BuildState[]) {
    return (this.#sql(`SELECT ${BUILD_COLUMNS} FROM builds WHERE state IN (${placeholders(states.length)}) ORDER BY seq`)
      .all(...states) as Row[]).map(toBuild)
  }

  async queueState (build: Build) {
    const row = this.#sql(`
      SELECT
        EXISTS (SELECT 1 FROM builds r WHERE r.stream = :stream AND r.state = 'running') AS running,
        (SELECT COUNT(*) FROM builds o WHERE o.stream = :stream AND o.state = 'queued' AND o.seq < :seq) AS ownAhead,
        (SELECT COUNT(*) FROM builds q WHERE q.state = 'queued' AND q.seq < :seq) AS allAhead`).get({ stream: build.stream, seq: build.seq }) as Row
    const streamBusy = row.running === 1 || (row.ownAhead as number) > 0
    return { streamBusy, position: 1 + (streamBusy ? row.ownAhead as number : row.allAhead as number) }
  }

  async activeCounts () {
    return this.#sql(`SELECT stream, state, COUNT(*) AS count FROM builds WHERE state IN ('queued', 'running')
                      GROUP BY stream, state`).all() as Array<{ stream: string, state: 'queued' | 'running', count: number }>
  }

  async latestResult (stream: string) {
    const row = this.#sql(`SELECT ${BUILD_COLUMNS} FROM builds WHERE stream = ? AND state IN ('succeeded', 'unchanged')
                                  AND result IS NOT NULL ORDER BY seq DESC LIMIT 1`).get(stream) as Row | undefined
    return row ? toBuild(row) : undefined
  }

  #set (patch: BuildPatch) {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined) as [keyof BuildPatch, unknown][]
    return {
      sql: entries.map(([k]) => `, ${columns[k]} = ?`).join(''),
      args: entries.map(([k, v]) => ((k === 'result' || k === 'bootTest') && v !== null ? JSON.stringify(v) : v))
    }
  }

  async transition (id: string, from: readonly BuildState[], to: BuildState, patch: BuildPatch, event: EventDraft) {
    const set = this.#set(patch)
    const sql = this.#sql(`UPDATE builds SET state = ?${set.sql} WHERE id = ? AND state IN (${placeholders(from.length)})
                                  RETURNING ${BUILD_COLUMNS}`)
    return this.#changeTx(() => sql.get(to, ...set.args, id, ...from) as Row | undefined, event)
  }

  async update (id: string, whenState: readonly BuildState[], patch: QuietPatch) {
    const set = this.#set(patch)
    if (!set.sql) return this.#get(id)
    const row = this.#sql(`UPDATE builds SET ${set.sql.slice(2)} WHERE id = ? AND state IN (${placeholders(whenState.length)})
                                  RETURNING ${BUILD_COLUMNS}`).get(...set.args, id, ...whenState) as Row | undefined
    return row ? toBuild(row) : undefined
  }

  async claimNext (maxRunning: number, startedAt: string, phase: string, event: EventDraft) {
    // One statement, and better-sqlite3 has one connection: the claim is atomic.
    const sql = this.#sql(`
      UPDATE builds SET state = 'running', started_at = ?, phase = ?
      WHERE seq = (
        SELECT q.seq FROM builds q
        WHERE q.state = 'queued'
          AND NOT EXISTS (SELECT 1 FROM builds r WHERE r.state = 'running' AND r.stream = q.stream)
        ORDER BY q.seq LIMIT 1)
      AND (SELECT COUNT(*) FROM builds WHERE state = 'running') < ?
      RETURNING ${BUILD_COLUMNS}`)
    return this.#changeTx(() => sql.get(startedAt, phase, maxRunning) as Row | undefined, event)
  }

  async latestEventSeq () {
    // The sequence table remembers the highest number ever given, even once pruned.
    const row = this.#sql("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as Row | undefined
    return (row?.seq as number | undefined) ?? 0
  }

  async eventsAfter (seq: number, query: EventQuery) {
    const where = ['seq > ?']
    const args: unknown[] = [seq]
    if (query.stream !== undefined) { where.push('stream = ?'); args.push(query.stream) }
    if (query.build !== undefined) { where.push('build_id = ?'); args.push(query.build) }
    return (this.#sql(`SELECT seq, type, build_id, stream, time, build FROM events WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`)
      .all(...args, query.limit) as Row[]).map(toEvent)
  }

  async resultTokenHash (id: string) {
    const row = this.#sql('SELECT result_token_hash FROM builds WHERE id = ?').get(id) as Row | undefined
    return row?.result_token_hash as string | undefined
  }

  async buildByResultTokenHash (hash: string) {
    const row = this.#sql('SELECT id FROM builds WHERE result_token_hash = ?').get(hash) as Row | undefined
    return row?.id as string | undefined
  }

  async recordResult (id: string, posted: PostedResult) {
    const row = this.#sql(`UPDATE builds SET outcome = ?, result = ?, meta_json = ?
                                  WHERE id = ? AND state = 'running' RETURNING ${BUILD_COLUMNS}`)
      .get(posted.outcome, JSON.stringify(posted.result), posted.metaJson, id) as Row | undefined
    return row ? toBuild(row) : undefined
  }

  async postedResult (id: string) {
    const row = this.#sql('SELECT outcome, result, meta_json FROM builds WHERE id = ?').get(id) as Row | undefined
    if (!row?.outcome) return undefined
    return { outcome: row.outcome, result: JSON.parse(row.result), metaJson: row.meta_json } as PostedResult
  }

  async getMeta (id: string) {
    const row = this.#sql(`SELECT meta_json FROM builds WHERE id = ? AND state IN (${placeholders(terminalStates.length)})`)
      .get(id, ...terminalStates) as Row | undefined
    return optional(row?.meta_json ?? null) as string | undefined
  }

  async pruneIdempotencyKeys (before: string) {
    return this.#sql('DELETE FROM idempotency_keys WHERE created_at < ?').run(before).changes
  }

  async pruneEvents (before: string) {
    return this.#sql('DELETE FROM events WHERE time < ?').run(before).changes
  }

  async finishedBefore (before: string, limit: number) {
    return (this.#sql(`SELECT ${BUILD_COLUMNS} FROM builds WHERE state IN (${placeholders(terminalStates.length)})
                       AND finished_at < ? ORDER BY seq LIMIT ?`).all(...terminalStates, before, limit) as Row[]).map(toBuild)
  }

  async deleteFinished (ids: string[]) {
    if (!ids.length) return 0
    return this.#sql(`DELETE FROM builds WHERE id IN (${placeholders(ids.length)}) AND state IN (${placeholders(terminalStates.length)})`)
      .run(...ids, ...terminalStates).changes
  }

  async setPin (stream: string, cosaBuildId: string, pinned: boolean, at: string) {
    if (pinned) {
      this.#sql('INSERT INTO pins (stream, cosa_build_id, pinned_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
        .run(stream, cosaBuildId, at)
    } else {
      this.#sql('DELETE FROM pins WHERE stream = ? AND cosa_build_id = ?').run(stream, cosaBuildId)
    }
  }

  async pinnedBuilds (stream: string) {
    const rows = this.#sql('SELECT cosa_build_id FROM pins WHERE stream = ?').all(stream) as Row[]
    return new Set(rows.map((r) => r.cosa_build_id as string))
  }
}
