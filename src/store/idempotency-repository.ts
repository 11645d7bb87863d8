import type { IdempotencyRepository } from './repositories.js'
import type { SqlClient } from './sql-client.js'

export class SqlIdempotencyRepository implements IdempotencyRepository {
  readonly #sql: SqlClient

  constructor (sql: SqlClient) {
    this.#sql = sql
  }

  async pruneIdempotencyKeys (before: string) {
    return this.#sql.run('DELETE FROM idempotency_keys WHERE created_at < ?', [before])
  }
}
