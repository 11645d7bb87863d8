import type { EventDraft } from '../builds/build-event.js'
import { terminalStates, type BuildState } from '../builds/build-state.js'
import type { ArchRun, Build, PostedResult } from '../builds/model.js'
import { appendEvent } from './event-repository.js'
import type {
  BuildChange, BuildPatch, BuildQuery, BuildRepository, Claimed, IdempotencyClaim, InsertOutcome, LeaseTerms, NewBuild, Placed, QuietPatch
} from './repositories.js'
import { optional, type Row, type SqlClient, type SqlRunner } from './sql-client.js'

const columns: Record<keyof BuildPatch, string> = {
  reason: 'reason',
  message: 'message',
  exitCode: 'exit_code',
  configCommit: 'config_commit',
  containerId: 'container_id',
  engine: 'engine',
  arch: 'arch',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  cancelRequestedAt: 'cancel_requested_at',
  result: 'result',
  resultTokenHash: 'result_token_hash',
  phase: 'phase',
  failedStep: 'failed_step',
  bootTest: 'boot_test',
  attempts: 'attempts',
  outcome: 'outcome',
  metaJson: 'meta_json',
  arches: 'arches'
}

/** Fields stored as JSON text. */
const JSON_COLUMNS = new Set<keyof BuildPatch>(['result', 'bootTest', 'attempts', 'arches'])

export function toBuild (row: Row): Build {
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
    engine: optional(row.engine),
    arch: optional(row.arch),
    result: row.result ? JSON.parse(row.result) : undefined,
    createdAt: row.created_at,
    startedAt: optional(row.started_at),
    finishedAt: optional(row.finished_at),
    cancelRequestedAt: optional(row.cancel_requested_at),
    phase: optional(row.phase),
    failedStep: optional(row.failed_step),
    bootTest: row.boot_test ? JSON.parse(row.boot_test) : undefined,
    attempts: row.attempts ? JSON.parse(row.attempts) : undefined,
    arches: row.arches ? JSON.parse(row.arches) : undefined
  }
}

// Everything a Build has; meta.json (up to megabytes) is read only when asked for.
export const BUILD_COLUMNS = `seq, id, stream, state, reason, message, exit_code, request, config_commit, container_id,
  engine, arch, result, created_at, started_at, finished_at, cancel_requested_at, phase, failed_step, boot_test, attempts,
  arches`

// Built once: the statement cache looks statements up by their text.
const GET_BUILD = `SELECT ${BUILD_COLUMNS} FROM builds WHERE id = ?`

const placeholders = (n: number) => Array(n).fill('?').join(', ')

/** A supervisor's write carries its fencing token in the same statement: a stale token changes 0 rows. */
const fenced = (fence: number | undefined) => fence === undefined ? '' : ' AND lease_token = ?'
const fenceArgs = (fence: number | undefined) => fence === undefined ? [] : [fence]

/** A claim that lost a race on the one-running-per-stream index tries again this often before it comes back empty. */
const CLAIM_TRIES = 3

export class SqlBuildRepository implements BuildRepository {
  readonly #sql: SqlClient

  constructor (sql: SqlClient) {
    this.#sql = sql
  }

  // A change and its event commit together or not at all.
  async #changeTx (sql: string, args: unknown[], draft: EventDraft): Promise<BuildChange | undefined> {
    return this.#sql.transaction(async (tx) => {
      const row = await tx.get(sql, args)
      if (!row) return undefined
      const build = toBuild(row)
      return { build, event: await appendEvent(tx, this.#sql.dialect, build, draft) }
    })
  }

  async #get (db: SqlRunner, id: string) {
    const row = await db.get(GET_BUILD, [id])
    return row ? toBuild(row) : undefined
  }

  // The key and the build are written in one transaction, so a crash never
  // leaves a key without its build or a build admitted twice. The key goes
  // first: on PostgreSQL a second transaction with the same key waits at
  // that insert for the first to end, then reads its build.
  async #insert (tx: SqlRunner, build: NewBuild, claim: IdempotencyClaim | undefined, draft: EventDraft): Promise<InsertOutcome> {
    if (claim) {
      const taken = await tx.get(`INSERT INTO idempotency_keys (scope, key, fingerprint, build_id, created_at) VALUES (?, ?, ?, ?, ?)
                                  ON CONFLICT (scope, key) DO NOTHING RETURNING build_id`,
      [claim.scope, claim.key, claim.fingerprint, build.id, build.createdAt])
      if (!taken) {
        const prior = await tx.get('SELECT fingerprint, build_id FROM idempotency_keys WHERE scope = ? AND key = ?', [claim.scope, claim.key])
        if (prior!.fingerprint !== claim.fingerprint) return { kind: 'mismatch' }
        return { kind: 'replayed', build: (await this.#get(tx, prior!.build_id))! }
      }
    }
    await tx.run(`INSERT INTO builds (id, stream, state, request, created_at) VALUES (?, ?, 'queued', ?, ?)`,
      [build.id, build.stream, JSON.stringify(build.request), build.createdAt])
    const created = (await this.#get(tx, build.id))!
    return { kind: 'created', build: created, event: await appendEvent(tx, this.#sql.dialect, created, draft) }
  }

  async insertBuild (build: NewBuild, claim: IdempotencyClaim | undefined, event: EventDraft) {
    return this.#sql.transaction((tx) => this.#insert(tx, build, claim, event))
  }

  getBuild (id: string) {
    return this.#get(this.#sql, id)
  }

  async listBuilds (query: BuildQuery) {
    const where: string[] = []
    const args: unknown[] = []
    if (query.stream !== undefined) { where.push('stream = ?'); args.push(query.stream) }
    if (query.state !== undefined) { where.push('state = ?'); args.push(query.state) }
    if (query.beforeSeq !== undefined) { where.push('seq < ?'); args.push(query.beforeSeq) }
    const sql = `SELECT ${BUILD_COLUMNS} FROM builds ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq DESC LIMIT ?`
    return (await this.#sql.all(sql, [...args, query.limit])).map(toBuild)
  }

  async buildsInState (states: BuildState[]) {
    return (await this.#sql.all(`SELECT ${BUILD_COLUMNS} FROM builds WHERE state IN (${placeholders(states.length)}) ORDER BY seq`, states))
      .map(toBuild)
  }

  async queueHeads () {
    // Grouped in the database: a long queue of one stream is one row here, not all of them parsed on every wake.
    return (await this.#sql.all(`SELECT ${BUILD_COLUMNS} FROM builds WHERE seq IN
      (SELECT MIN(seq) FROM builds WHERE state = 'queued' GROUP BY stream) ORDER BY seq`)).map(toBuild)
  }

  async queueState (build: Build) {
    const row = (await this.#sql.get(`
      SELECT
        EXISTS (SELECT 1 FROM builds r WHERE r.stream = ? AND r.state = 'running') AS running,
        (SELECT COUNT(*) FROM builds o WHERE o.stream = ? AND o.state = 'queued' AND o.seq < ?) AS own_ahead,
        (SELECT COUNT(*) FROM builds q WHERE q.state = 'queued' AND q.seq < ?) AS all_ahead`,
    [build.stream, build.stream, build.seq, build.seq]))!
    // EXISTS is 1 on SQLite, true on PostgreSQL.
    const streamBusy = Boolean(row.running) || (row.own_ahead as number) > 0
    return { streamBusy, position: 1 + (streamBusy ? row.own_ahead as number : row.all_ahead as number) }
  }

  async activeCounts () {
    return await this.#sql.all(`SELECT stream, state, COUNT(*) AS count FROM builds WHERE state IN ('queued', 'running')
                                GROUP BY stream, state`) as Array<{ stream: string, state: 'queued' | 'running', count: number }>
  }

  async latestResult (stream: string) {
    const row = await this.#sql.get(`SELECT ${BUILD_COLUMNS} FROM builds WHERE stream = ? AND state IN ('succeeded', 'unchanged')
                                     AND result IS NOT NULL ORDER BY seq DESC LIMIT 1`, [stream])
    return row ? toBuild(row) : undefined
  }

  #set (patch: BuildPatch) {
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined) as [keyof BuildPatch, unknown][]
    return {
      sql: entries.map(([k]) => `, ${columns[k]} = ?`).join(''),
      args: entries.map(([k, v]) => (JSON_COLUMNS.has(k) && v !== null ? JSON.stringify(v) : v))
    }
  }

  async transition (id: string, from: readonly BuildState[], to: BuildState, patch: BuildPatch, event: EventDraft, fence?: number) {
    const set = this.#set(patch)
    return this.#changeTx(`UPDATE builds SET state = ?${set.sql} WHERE id = ? AND state IN (${placeholders(from.length)})${fenced(fence)}
                           RETURNING ${BUILD_COLUMNS}`, [to, ...set.args, id, ...from, ...fenceArgs(fence)], event)
  }

  async update (id: string, whenState: readonly BuildState[], patch: QuietPatch, fence?: number) {
    const set = this.#set(patch)
    if (!set.sql) return this.#get(this.#sql, id)
    const row = await this.#sql.get(`UPDATE builds SET ${set.sql.slice(2)} WHERE id = ? AND state IN (${placeholders(whenState.length)})${fenced(fence)}
                                     RETURNING ${BUILD_COLUMNS}`, [...set.args, id, ...whenState, ...fenceArgs(fence)])
    return row ? toBuild(row) : undefined
  }

  // The lease is taken in the claim's own statement (osbuild-composer's
  // lesson: a claim and its lease written apart leave a running build that
  // nobody supervises).
  async #claimTx (sql: string, args: unknown[], event: EventDraft): Promise<Claimed | undefined> {
    return this.#sql.transaction(async (tx) => {
      const { serializeClaims } = this.#sql.dialect
      if (serializeClaims) await tx.get(serializeClaims)
      const { token } = (await tx.get(this.#sql.dialect.nextLeaseToken))!
      const row = await tx.get(sql, [token, ...args])
      if (!row) return undefined
      const build = toBuild(row)
      return { build, token: token as number, event: await appendEvent(tx, this.#sql.dialect, build, event) }
    })
  }

  async claimNext (maxRunning: number, startedAt: string, phase: string, event: EventDraft, lease: LeaseTerms, placed?: Placed) {
    // One statement. On SQLite one connection makes it atomic; on PostgreSQL
    // claims take turns (dialect.serializeClaims), so each counts the running
    // builds of the claims before it, the other replicas' too; concurrent
    // claimers skip each other's rows, and the unique index on running
    // builds turns a second claim of a busy stream into an error.
    // Only the oldest queued build of a stream is a candidate: a claimer that
    // skips an older build another claimer has locked must not start the
    // next one of that stream before it (a stream's builds run in order).
    // Placed on an engine, the build takes that engine's name and arch in the
    // same statement that counts the engine's running builds against its capacity.
    const sql = `
      UPDATE builds SET lease_token = ?, started_at = ?, phase = ?, state = 'running', lease_owner = ?,
        lease_expires_at = ${this.#sql.dialect.nowMs} + ?${placed ? ', engine = ?, arch = ?' : ''}
      WHERE seq = (
        SELECT q.seq FROM builds q
        WHERE q.state = 'queued'${placed ? ' AND q.id = ?' : ''}
          AND NOT EXISTS (SELECT 1 FROM builds r WHERE r.state = 'running' AND r.stream = q.stream)
          AND NOT EXISTS (SELECT 1 FROM builds o WHERE o.state = 'queued' AND o.stream = q.stream AND o.seq < q.seq)
        ORDER BY q.seq LIMIT 1 ${this.#sql.dialect.skipLocked})
      AND (SELECT COUNT(*) FROM builds WHERE state = 'running') < ?
      ${placed ? "AND (SELECT COUNT(*) FROM builds WHERE state = 'running' AND engine = ?) < ?" : ''}
      RETURNING ${BUILD_COLUMNS}`
    // The lease token comes first (#claimTx takes it from the sequence).
    const args = placed
      ? [startedAt, phase, lease.owner, lease.ms, placed.engine, placed.arch, placed.id, maxRunning, placed.engine, placed.capacity]
      : [startedAt, phase, lease.owner, lease.ms, maxRunning]
    for (let tries = 1; ; tries++) {
      try {
        return await this.#claimTx(sql, args, event)
      } catch (err) {
        if (!this.#sql.dialect.isUniqueViolation(err)) throw err
        if (tries === CLAIM_TRIES) return undefined
      }
    }
  }

  async moveArch (id: string, to: Omit<Placed, 'id'>, arches: ArchRun[], fence: number) {
    // The build runs on its last arch's engine still: it is not one of the new engine's builds.
    const row = await this.#sql.get(`UPDATE builds SET engine = ?, arch = ?, arches = ?, container_id = NULL,
        result_token_hash = NULL, outcome = NULL, result = NULL, meta_json = NULL, message = NULL
      WHERE id = ? AND state = 'running' AND lease_token = ?
        AND (SELECT COUNT(*) FROM builds WHERE state = 'running' AND engine = ? AND id <> ?) < ?
      RETURNING ${BUILD_COLUMNS}`, [to.engine, to.arch, JSON.stringify(arches), id, fence, to.engine, id, to.capacity])
    if (row) return toBuild(row)
    const held = await this.#sql.get("SELECT 1 AS held FROM builds WHERE id = ? AND state = 'running' AND lease_token = ?", [id, fence])
    return held ? 'full' as const : undefined
  }

  async homeEngine (stream: string, arch: string) {
    // A multi-arch build ran each arch on an engine of its own; its `engine` and `arch` are the last one's.
    const rows = await this.#sql.all(`SELECT engine, arch, arches FROM builds WHERE stream = ? AND engine IS NOT NULL
                                      AND (arch = ? OR arches LIKE ?) ORDER BY seq DESC LIMIT 50`, [stream, arch, `%"arch":"${arch}"%`])
    for (const row of rows) {
      if (row.arch === arch) return row.engine as string
      const ran = (JSON.parse(row.arches) as ArchRun[]).find((r) => r.arch === arch)?.engine
      if (ran) return ran
    }
    return undefined
  }

  async resultTokenHash (id: string) {
    const row = await this.#sql.get('SELECT result_token_hash FROM builds WHERE id = ?', [id])
    return optional(row?.result_token_hash ?? null) as string | undefined
  }

  async buildByResultTokenHash (hash: string) {
    const row = await this.#sql.get('SELECT id FROM builds WHERE result_token_hash = ?', [hash])
    return row?.id as string | undefined
  }

  async recordResult (id: string, posted: PostedResult) {
    const row = await this.#sql.get(`UPDATE builds SET outcome = ?, result = ?, meta_json = ?
                                     WHERE id = ? AND state = 'running' RETURNING ${BUILD_COLUMNS}`,
    [posted.outcome, JSON.stringify(posted.result), posted.metaJson, id])
    return row ? toBuild(row) : undefined
  }

  async postedResult (id: string) {
    const row = await this.#sql.get('SELECT outcome, result, meta_json FROM builds WHERE id = ?', [id])
    if (!row?.outcome) return undefined
    return { outcome: row.outcome, result: JSON.parse(row.result), metaJson: row.meta_json } as PostedResult
  }

  async getMeta (id: string) {
    const row = await this.#sql.get(`SELECT meta_json FROM builds WHERE id = ? AND state IN (${placeholders(terminalStates.length)})`,
      [id, ...terminalStates])
    return optional(row?.meta_json ?? null) as string | undefined
  }

  async finishedBefore (before: string, limit: number) {
    return (await this.#sql.all(`SELECT ${BUILD_COLUMNS} FROM builds WHERE state IN (${placeholders(terminalStates.length)})
                                 AND finished_at < ? ORDER BY seq LIMIT ?`, [...terminalStates, before, limit])).map(toBuild)
  }

  async deleteFinished (ids: string[]) {
    if (!ids.length) return 0
    return this.#sql.run(`DELETE FROM builds WHERE id IN (${placeholders(ids.length)}) AND state IN (${placeholders(terminalStates.length)})`,
      [...ids, ...terminalStates])
  }
}
