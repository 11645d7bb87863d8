import type { EngineRecord } from '../engines/model.js'
import type { EngineRepository } from './repositories.js'
import type { Row, SqlClient } from './sql-client.js'

const toEngine = (r: Row): EngineRecord => ({
  name: r.name,
  host: r.host,
  ...(r.tls ? { tls: JSON.parse(r.tls) } : {}),
  ...(r.arch ? { arch: r.arch } : {}),
  capacity: r.capacity,
  labels: JSON.parse(r.labels),
  source: r.source,
  draining: r.draining === 1,
  createdAt: r.created_at,
  updatedAt: r.updated_at
})

export class SqlEngineRepository implements EngineRepository {
  readonly #sql: SqlClient

  constructor (sql: SqlClient) {
    this.#sql = sql
  }

  async listEngines () {
    return (await this.#sql.all('SELECT * FROM engines ORDER BY name')).map(toEngine)
  }

  async getEngine (name: string) {
    const row = await this.#sql.get('SELECT * FROM engines WHERE name = ?', [name])
    return row ? toEngine(row) : undefined
  }

  async putEngine (e: Omit<EngineRecord, 'draining' | 'createdAt' | 'updatedAt'>, at: string) {
    // The drain flag and creation time outlive a change of settings.
    return this.#sql.transaction(async (tx) => {
      const created = !await tx.get('SELECT 1 FROM engines WHERE name = ?', [e.name])
      const row = await tx.get(`INSERT INTO engines (name, host, tls, arch, capacity, labels, source, draining, created_at, updated_at)
                                     VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
                                     ON CONFLICT (name) DO UPDATE SET host = excluded.host, tls = excluded.tls, arch = excluded.arch,
                                       capacity = excluded.capacity, labels = excluded.labels, source = excluded.source,
                                       updated_at = excluded.updated_at
                                     RETURNING *`,
      [e.name, e.host, e.tls ? JSON.stringify(e.tls) : null, e.arch ?? null, e.capacity, JSON.stringify(e.labels), e.source, at, at])
      return { engine: toEngine(row!), created }
    })
  }

  async setDraining (name: string, draining: boolean, at: string) {
    const row = await this.#sql.get('UPDATE engines SET draining = ?, updated_at = ? WHERE name = ? RETURNING *', [draining ? 1 : 0, at, name])
    return row ? toEngine(row) : undefined
  }

  async deleteEngine (name: string) {
    return await this.#sql.run('DELETE FROM engines WHERE name = ?', [name]) === 1
  }
}
