import { BUILD_COLUMNS, toBuild } from './build-repository.js'
import type { LeaseRepository, LeaseTerms } from './repositories.js'
import type { SqlClient } from './sql-client.js'

// Leases with expiry, by the database's clock: a running build's (taken by
// its claim, see SqlBuildRepository.claimNext) and singleton duties'. Each
// renewal and takeover is one conditional statement, so two replicas never
// both believe they hold one lease with the same token.

export class SqlLeaseRepository implements LeaseRepository {
  readonly #sql: SqlClient
  readonly #now: string

  constructor (sql: SqlClient) {
    this.#sql = sql
    this.#now = sql.dialect.nowMs
  }

  async renew (buildId: string, token: number, terms: LeaseTerms) {
    const row = await this.#sql.get(`UPDATE builds SET lease_expires_at = ${this.#now} + ?
      WHERE id = ? AND state = 'running' AND lease_token = ? AND lease_owner = ? RETURNING cancel_requested_at`,
    [terms.ms, buildId, token, terms.owner])
    return row ? { cancelRequested: row.cancel_requested_at !== null } : undefined
  }

  async adoptable (owner: string) {
    const rows = await this.#sql.all(`SELECT ${BUILD_COLUMNS}, lease_token FROM builds WHERE state = 'running'
      AND (lease_expires_at IS NULL OR lease_expires_at < ${this.#now} OR lease_owner = ?) ORDER BY seq`, [owner])
    return rows.map((row) => ({ build: toBuild(row), token: (row.lease_token ?? 0) as number }))
  }

  async takeOver (buildId: string, token: number, terms: LeaseTerms) {
    return this.#sql.transaction(async (tx) => {
      const next = (await tx.get(this.#sql.dialect.nextLeaseToken))!.token as number
      const row = await tx.get(`UPDATE builds SET lease_token = ?, lease_owner = ?, lease_expires_at = ${this.#now} + ?
        WHERE id = ? AND state = 'running' AND COALESCE(lease_token, 0) = ?
          AND (lease_expires_at IS NULL OR lease_expires_at < ${this.#now} OR lease_owner = ?)
        RETURNING ${BUILD_COLUMNS}`, [next, terms.owner, terms.ms, buildId, token, terms.owner])
      return row ? { build: toBuild(row), token: next } : undefined
    })
  }

  async release (buildId: string, token: number) {
    return await this.#sql.run("UPDATE builds SET lease_expires_at = 0 WHERE id = ? AND state = 'running' AND lease_token = ?",
      [buildId, token]) > 0
  }

  async holdDuty (name: string, terms: LeaseTerms) {
    // The holder renews; anyone takes an expired lease, with the next token.
    const row = await this.#sql.get(`INSERT INTO leases (name, owner, token, expires_at) VALUES (?, ?, 1, ${this.#now} + ?)
      ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at,
        token = CASE WHEN leases.owner = excluded.owner THEN leases.token ELSE leases.token + 1 END
      WHERE leases.owner = excluded.owner OR leases.expires_at < ${this.#now}
      RETURNING token`, [name, terms.owner, terms.ms])
    return row ? row.token as number : undefined
  }

  // Expired, not deleted: the next holder's token is still higher.
  async releaseDuty (name: string, owner: string) {
    await this.#sql.run('UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ?', [name, owner])
  }
}
