import { DEFAULT_KEEP, type Stream } from '../builds/model.js'
import type { StreamRepository } from './repositories.js'
import type { SqlClient, SqlRunner } from './sql-client.js'

// Streams registered before a field existed read as its default.
const toStream = (doc: string): Stream => ({ keep: DEFAULT_KEEP, ...JSON.parse(doc) })

export class SqlStreamRepository implements StreamRepository {
  readonly #sql: SqlClient

  constructor (sql: SqlClient) {
    this.#sql = sql
  }

  async putStream (stream: Stream) {
    const existing = await this.#sql.get('SELECT created_at FROM streams WHERE name = ?', [stream.name])
    const saved = { ...stream, createdAt: existing?.created_at ?? stream.createdAt }
    await this.#sql.run(`INSERT INTO streams (name, doc, created_at, updated_at) VALUES (?, ?, ?, ?)
                         ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`,
    [saved.name, JSON.stringify(saved), saved.createdAt, saved.updatedAt])
    return { stream: saved, created: existing === undefined }
  }

  async getStream (name: string) {
    const row = await this.#sql.get('SELECT doc FROM streams WHERE name = ?', [name])
    return row ? toStream(row.doc) : undefined
  }

  async deleteStream (name: string, purge: boolean) {
    return this.#sql.transaction((tx) => this.#delete(tx, name, purge))
  }

  async #delete (tx: SqlRunner, name: string, purge: boolean) {
    if (!await tx.get('SELECT 1 FROM streams WHERE name = ?', [name])) return { outcome: 'missing' as const, purged: [] }
    if (await tx.get("SELECT 1 FROM builds WHERE stream = ? AND state IN ('queued', 'running') LIMIT 1", [name])) {
      return { outcome: 'busy' as const, purged: [] }
    }
    await tx.run('DELETE FROM streams WHERE name = ?', [name])
    if (!purge) return { outcome: 'deleted' as const, purged: [] }
    const purged = (await tx.all('DELETE FROM builds WHERE stream = ? RETURNING id', [name])).map((r) => r.id as string)
    await tx.run('DELETE FROM pins WHERE stream = ?', [name])
    return { outcome: 'deleted' as const, purged }
  }

  async listStreams () {
    return (await this.#sql.all('SELECT doc FROM streams ORDER BY name')).map((r) => toStream(r.doc))
  }
}
