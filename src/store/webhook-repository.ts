import type { Attempt, AttemptOutcome, Delivery, NewDelivery, WebhookInput, WebhookRecord } from '../webhooks/model.js'
import type { WebhookRepository } from './repositories.js'
import { optional, type Row, type SqlClient, type SqlRunner } from './sql-client.js'

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

export class SqlWebhookRepository implements WebhookRepository {
  readonly #sql: SqlClient

  constructor (sql: SqlClient) {
    this.#sql = sql
  }

  async getWebhook (name: string) {
    const row = await this.#sql.get('SELECT * FROM webhooks WHERE name = ?', [name])
    return row ? toWebhook(row) : undefined
  }

  async listWebhooks () {
    return (await this.#sql.all('SELECT * FROM webhooks ORDER BY name')).map(toWebhook)
  }

  async insertWebhook (w: WebhookRecord) {
    await this.#sql.run(`INSERT INTO webhooks (name, url, events, streams, secret, cursor, enabled, created_at, updated_at)
                         VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)`,
    [w.name, w.url, JSON.stringify(w.events), JSON.stringify(w.streams), w.secret, w.cursor, w.createdAt, w.updatedAt])
  }

  async updateWebhook (name: string, input: WebhookInput, at: string, change: { secret?: string, cursor?: number }) {
    const row = await this.#sql.get(`UPDATE webhooks SET url = ?, events = ?, streams = ?, updated_at = ?, enabled = 1,
                                       disabled_reason = NULL, secret = coalesce(?, secret), cursor = coalesce(?, cursor)
                                     WHERE name = ? RETURNING *`,
    [input.url, JSON.stringify(input.events), JSON.stringify(input.streams), at, change.secret ?? null, change.cursor ?? null, name])
    return row ? toWebhook(row) : undefined
  }

  async disableWebhook (name: string, reason: string, at: string) {
    await this.#sql.run('UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? WHERE name = ?', [reason, at, name])
  }

  async deleteWebhook (name: string) {
    return await this.#sql.run('DELETE FROM webhooks WHERE name = ?', [name]) === 1
  }

  async #enqueue (tx: SqlRunner, name: string, from: number, to: number, deliveries: NewDelivery[], at: string) {
    const moved = await tx.run('UPDATE webhooks SET cursor = ? WHERE name = ? AND cursor = ? AND enabled = 1', [to, name, from])
    if (moved !== 1) return false
    for (const d of deliveries) {
      await tx.run(`INSERT INTO webhook_deliveries (id, webhook, event_seq, type, build_id, body, state, next_attempt_at, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?)`, [d.id, name, d.eventSeq, d.type, d.buildId, d.body, at, at])
    }
    return true
  }

  async enqueue (name: string, from: number, to: number, deliveries: NewDelivery[], at: string) {
    return this.#sql.transaction((tx) => this.#enqueue(tx, name, from, to, deliveries, at))
  }

  async dueDeliveries (now: string, limit: number, skip: string[]) {
    const rows = await this.#sql.all(`
      SELECT d.id, d.webhook, w.url, w.secret, d.body, d.tries FROM webhook_deliveries d JOIN webhooks w ON w.name = d.webhook
      WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND w.enabled = 1
        ${skip.length ? `AND d.id NOT IN (${skip.map(() => '?').join(', ')})` : ''}
      ORDER BY d.next_attempt_at, d.seq LIMIT ?`, [now, ...skip, limit])
    return rows.map((r) => ({ id: r.id, webhook: r.webhook, url: r.url, secret: r.secret, body: r.body, tries: r.tries }))
  }

  async #pendingAt (column: 'next_attempt_at' | 'created_at') {
    const row = await this.#sql.get(`SELECT min(d.${column}) AS at FROM webhook_deliveries d JOIN webhooks w ON w.name = d.webhook
                                     WHERE d.state = 'pending' AND w.enabled = 1`)
    return optional(row!.at as string | null)
  }

  async nextDueAt () {
    return this.#pendingAt('next_attempt_at')
  }

  async oldestPendingAt () {
    return this.#pendingAt('created_at')
  }

  async recordAttempt (id: string, attempt: Attempt, outcome: AttemptOutcome) {
    await this.#sql.transaction(async (tx) => {
      const pending = outcome.state === 'pending'
      const row = await tx.get(`UPDATE webhook_deliveries SET state = ?, tries = coalesce(?, tries), next_attempt_at = ?
                                WHERE id = ? RETURNING seq`,
      [outcome.state, pending ? outcome.tries : null, pending ? outcome.nextAttemptAt : null, id])
      // Deleted with its webhook while the attempt ran: nothing to record.
      if (!row) return
      await tx.run('INSERT INTO webhook_attempts (delivery_seq, at, status_code, duration_ms, error) VALUES (?, ?, ?, ?, ?)',
        [row.seq, attempt.at, attempt.statusCode ?? null, attempt.durationMs, attempt.error ?? null])
    })
  }

  async #withAttempts (row: Row): Promise<Delivery> {
    const attempts = await this.#sql.all('SELECT * FROM webhook_attempts WHERE delivery_seq = ? ORDER BY seq', [row.seq])
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
    const rows = await this.#sql.all(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = ? ORDER BY seq DESC LIMIT ?`,
      [webhook, limit])
    return Promise.all(rows.map((r) => this.#withAttempts(r)))
  }

  async getDelivery (webhook: string, id: string) {
    const row = await this.#sql.get(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook = ? AND id = ?`, [webhook, id])
    return row ? this.#withAttempts(row) : undefined
  }

  async redeliver (webhook: string, id: string, at: string) {
    const row = await this.#sql.get(`UPDATE webhook_deliveries SET state = 'pending', tries = 0, next_attempt_at = ?
                                     WHERE webhook = ? AND id = ? RETURNING ${DELIVERY_COLUMNS}`, [at, webhook, id])
    return row ? this.#withAttempts(row) : undefined
  }

  async pruneDeliveries (before: string) {
    // A delivery redelivered by hand since is as new as its last attempt.
    return this.#sql.run(`DELETE FROM webhook_deliveries WHERE state IN ('delivered', 'failed') AND created_at < ?
                          AND NOT EXISTS (SELECT 1 FROM webhook_attempts a WHERE a.delivery_seq = webhook_deliveries.seq AND a.at >= ?)`,
    [before, before])
  }
}
