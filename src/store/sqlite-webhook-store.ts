import type Database from 'better-sqlite3'
import { openDatabase } from './sqlite-database.js'
import type { Attempt, AttemptOutcome, Delivery, NewDelivery, WebhookInput, WebhookRecord } from '../webhooks/model.js'
import type { WebhookStore } from './webhook-store.js'

// Its own connection to the service's database and its own schema version,
// so that the builds' store (sqlite-store.ts) and this one migrate apart.
// One thread runs both: better-sqlite3's transactions are synchronous, so
// the two connections never wait on each other's open transaction.

const SCHEMA = 'webhooks'

const migrations = [
  `CREATE TABLE webhooks (
     name TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     events TEXT NOT NULL,
     streams TEXT NOT NULL,
     secret TEXT NOT NULL,
     cursor INTEGER NOT NULL,
     enabled INTEGER NOT NULL DEFAULT 1,
     disabled_reason TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE webhook_deliveries (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     webhook TEXT NOT NULL REFERENCES webhooks (name) ON DELETE CASCADE,
     event_seq INTEGER NOT NULL,
     type TEXT NOT NULL,
     build_id TEXT NOT NULL,
     body TEXT NOT NULL,
     state TEXT NOT NULL,
     tries INTEGER NOT NULL DEFAULT 0,
     next_attempt_at TEXT,
     created_at TEXT NOT NULL,
     UNIQUE (webhook, event_seq)
   );
   CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
   CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, seq);
   CREATE TABLE webhook_attempts (
     delivery_seq INTEGER NOT NULL REFERENCES webhook_deliveries (seq) ON DELETE CASCADE,
     at TEXT NOT NULL,
     status_code INTEGER,
     duration_ms INTEGER NOT NULL,
     error TEXT
   );
   CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_seq);`
]

type Row = Record<string, any>

const optional = <T>(v: T | null): T | undefined => (v === null ? undefined : v)

const toWebhook = (r: Row): WebhookRecord => ({
  name: r.name,
  url: r.url,
  events: JSON.parse(r.events),
  streams: JSON.parse(r.streams),
  enabled: r.enabled === 1,
  disabledReason: optional(r.disabled_reason),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  secret: r.secret,
  cursor: r.cursor
})

const toAttempt = (r: Row): Attempt =>
  ({ at: r.at, statusCode: optional(r.status_code), durationMs: r.duration_ms, error: optional(r.error) })

const DELIVERY_COLUMNS = 'seq, id, webhook, event_seq, type, build_id, state, next_attempt_at, created_at'

export class SqliteWebhookStore implements WebhookStore {
  readonly #db: Database.Database
  readonly #enqueueTx: (name: string, from: number, to: number, deliveries: NewDelivery[], at: string) => boolean

  constructor (path: string) {
    this.#db = openDatabase(path)
    this.#migrate()
    this.#enqueueTx = this.#db.transaction(this.#enqueue)
  }

  #migrate () {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)')
    const row = this.#db.prepare('SELECT version FROM schema_versions WHERE name = ?').get(SCHEMA) as Row | undefined
    for (const [i, sql] of migrations.entries()) {
      if (i < (row?.version ?? 0)) continue
      this.#db.transaction(() => {
        this.#db.exec(sql)
        this.#db.prepare(`INSERT INTO schema_versions (name, version) VALUES (?, ?)
                          ON CONFLICT (name) DO UPDATE SET version = excluded.version`).run(SCHEMA, i + 1)
      })()
    }
  }

  async close () {
    this.#db.close()
  }

  async getWebhook (name: string) {
    const row = this.#db.prepare('SELECT * FROM webhooks WHERE name = ?').get(name) as Row | undefined
    return row ? toWebhook(row) : undefined
  }

  async listWebhooks () {
    return (this.#db.prepare('SELECT * FROM webhooks ORDER BY name').all() as Row[]).map(toWebhook)
  }

  async insertWebhook (w: WebhookRecord) {
    this.#db.prepare(`INSERT INTO webhooks (name, url, events, streams, secret, cursor, enabled, created_at, updated_at)
                      VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`)
      .run(w.name, w.url, JSON.stringify(w.events), JSON.stringify(w.streams), w.secret, w.cursor, w.createdAt, w.updatedAt)
  }

  async updateWebhook (name: string, input: WebhookInput, at: string, change: { secret?: string, cursor?: number }) {
    const row = this.#db.prepare(`UPDATE webhooks SET url = ?, events = ?, streams = ?, updated_at = ?, enabled = 1,
                                    disabled_reason = NULL, secret = coalesce(?, secret), cursor = coalesce(?, cursor)
                                  WHERE name = ? RETURNING *`)
      .get(input.url, JSON.stringify(input.events), JSON.stringify(input.streams), at,
        change.secret ?? null, change.cursor ?? null, name) as Row | undefined
    return row ? toWebhook(row) : undefined
  }

  async disableWebhook (name: string, reason: string, at: string) {
    this.#db.prepare('UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE name = ?').run(reason, at, name)
  }

  async deleteWebhook (name: string) {
    return this.#db.prepare('DELETE FROM webhooks WHERE name = ?').run(name).changes === 1
  }

  readonly #enqueue = (name: string, from: number, to: number, deliveries: NewDelivery[], at: string) => {
    const moved = this.#db.prepare('UPDATE webhooks SET cursor = ? WHERE name = ? AND cursor = ? AND enabled = 1').run(to, name, from)
    if (moved.changes !== 1) return false
    const insert = this.#db.prepare(`INSERT INTO webhook_deliveries (id, webhook, event_seq, type, build_id, body, state, next_attempt_at, created_at)
                                     VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)`)
    for (const d of deliveries) insert.run(d.id, name, d.eventSeq, d.type, d.buildId, d.body, at, at)
    return true
  }

  async enqueue (name: string, from: number, to: number, deliveries: NewDelivery[], at: string) {
    return this.#enqueueTx(name, from, to, deliveries, at)
  }

  async dueDeliveries (now: string, limit: number, skip: string[]) {
    const rows = this.#db.prepare(`
      SELECT d.id, d.webhook, w.url, w.secret, d.body, d.tries FROM webhook_deliveries d JOIN webhooks w ON w.name = d.webhook
      WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND w.enabled = 1
        AND d.id NOT IN (SELECT value FROM json_each(?))
      ORDER BY d.next_attempt_at, d.seq LIMIT ?`).all(now, JSON.stringify(skip), limit) as Row[]
    return rows.map((r) => ({ id: r.id, webhook: r.webhook, url: r.url, secret: r.secret, body: r.body, tries: r.tries }))
  }

  async nextDueAt () {
    const row = this.#db.prepare(`SELECT min(d.next_attempt_at) AS at FROM webhook_deliveries d JOIN webhooks w ON w.name = d.webhook
                                  WHERE d.state = 'pending' AND w.enabled = 1`).get() as Row
    return optional(row.at as string | null)
  }

  async oldestPendingAt () {
    const row = this.#db.prepare(`SELECT min(d.created_at) AS at FROM webhook_deliveries d JOIN webhooks w ON w.name = d.webhook
                                  WHERE d.state = 'pending' AND w.enabled = 1`).get() as Row
    return optional(row.at as string | null)
  }

  async recordAttempt (id: string, attempt: Attempt, outcome: AttemptOutcome) {
    this.#db.transaction(() => {
      const row = this.#db.prepare(`UPDATE webhook_deliveries SET state = ?, tries = coalesce(?, tries), next_attempt_at = ?
                                    WHERE id = ? RETURNING seq`)
        .get(outcome.state, outcome.state === 'pending' ? outcome.tries : null,
          outcome.state === 'pending' ? outcome.nextAttemptAt : null, id) as Row | undefined
      // Deleted with its webhook while the attempt ran: nothing to record.
      if (!row) return
      this.#db.prepare('INSERT INTO webhook_attempts (delivery_seq, at, status_code, duration_ms, error) VALUES (?, ?, ?, ?, ?)')
        .run(row.seq, attempt.at, attempt.statusCode ?? null, attempt.durationMs, attempt.error ?? null)
    })()
  }

  #withAttempts (row: Row): Delivery {
    const attempts = this.#db.prepare('SELECT * FROM webhook_attempts WHERE delivery_seq = ? ORDER BY rowid').all(row.seq) as Row[]
    return {
      id: row.id,
      webhook: row.webhook,
      eventSeq: row.event_seq,
      type: row.type,
      buildId: row.build_id,
      state: row.state,
      createdAt: row.created_at,
      nextAttemptAt: optional(row.next_attempt_at),
      attempts: attempts.map(toAttempt)
    }
  }

  async listDeliveries (webhook: string, limit: number) {
    const rows = this.#db.prepare(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = ? ORDER BY seq DESC LIMIT ?`)
      .all(webhook, limit) as Row[]
    return rows.map((r) => this.#withAttempts(r))
  }

  async getDelivery (webhook: string, id: string) {
    const row = this.#db.prepare(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = ? AND id = ?`).get(webhook, id) as Row | undefined
    return row ? this.#withAttempts(row) : undefined
  }

  async redeliver (webhook: string, id: string, at: string) {
    const row = this.#db.prepare(`UPDATE webhook_deliveries SET state = 'pending', tries = 0, next_attempt_at = ?
                                  WHERE webhook = ? AND id = ? RETURNING ${DELIVERY_COLUMNS}`).get(at, webhook, id) as Row | undefined
    return row ? this.#withAttempts(row) : undefined
  }
}
