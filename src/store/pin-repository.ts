import type { PinRepository } from './repositories.js'
import type { SqlClient } from './sql-client.js'

export class SqlPinRepository implements PinRepository {
  readonly #sql: SqlClient

  constructor (sql: SqlClient) {
    this.#sql = sql
  }

  async setPin (stream: string, cosaBuildId: string, pinned: boolean, at: string) {
    if (pinned) {
      await this.#sql.run('INSERT INTO pins (stream, cosa_build_id, pinned_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', [stream, cosaBuildId, at])
    } else {
      await this.#sql.run('DELETE FROM pins WHERE stream = ? AND cosa_build_id = ?', [stream, cosaBuildId])
    }
  }

  async pinnedBuilds (stream: string) {
    const rows = await this.#sql.all('SELECT cosa_build_id FROM pins WHERE stream = ?', [stream])
    return new Set(rows.map((r) => r.cosa_build_id as string))
  }
}
