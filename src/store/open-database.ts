import { SqlBuildRepository } from './build-repository.js'
import { SqlEngineRepository } from './engine-repository.js'
import { SqlEventRepository } from './event-repository.js'
import { SqlIdempotencyRepository } from './idempotency-repository.js'
import { SqlLogRepository } from './log-repository.js'
import { migrate } from './migrations.js'
import { SqlLeaseRepository } from './lease-repository.js'
import { SqlPinRepository } from './pin-repository.js'
import type { Database } from './repositories.js'
import type { SqlClient } from './sql-client.js'
import { SqlStreamRepository } from './stream-repository.js'
import { SqlWebhookRepository } from './webhook-repository.js'

/** The NOTIFY channel of queue changes (a build queued, or one ended and freed a slot). */
const QUEUE_CHANNEL = 'cosa_buildd_queue'
/** The NOTIFY channel of cancel requests, with the build's id: its supervisor, on another replica, stops it at once. */
const CANCEL_CHANNEL = 'cosa_buildd_cancel'

/** The URL as it may be logged or shown: its password replaced. */
export function redactDatabaseUrl (url: string) {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(an unparsable database URL)'
  }
}

/** A driver's message with the password taken out, wherever it appears. */
function redactError (err: unknown, url: string) {
  let password = ''
  try { password = decodeURIComponent(new URL(url).password) } catch {}
  const message = (err as Error).message ?? String(err)
  return new Error(`database ${redactDatabaseUrl(url)}: ${password ? message.replaceAll(password, '***') : message}`)
}

/** The repositories over one client; the schema is brought up to date first. */
async function databaseOver (sql: SqlClient, legacy?: { userVersion: number }): Promise<Database> {
  await migrate(sql, legacy)
  return {
    dialect: sql.dialect.name,
    streams: new SqlStreamRepository(sql),
    builds: new SqlBuildRepository(sql),
    idempotency: new SqlIdempotencyRepository(sql),
    pins: new SqlPinRepository(sql),
    events: new SqlEventRepository(sql),
    webhooks: new SqlWebhookRepository(sql),
    logs: new SqlLogRepository(sql),
    leases: new SqlLeaseRepository(sql),
    hintQueue: async () => { await sql.notify?.(QUEUE_CHANNEL) },
    onQueueHint: (fn) => sql.listen?.(QUEUE_CHANNEL, () => fn()) ?? (async () => undefined),
    hintCancel: async (buildId) => { await sql.notify?.(CANCEL_CHANNEL, buildId) },
    onCancelHint: (fn) => sql.listen?.(CANCEL_CHANNEL, (id) => { if (id) fn(id) }) ?? (async () => undefined),
    engines: new SqlEngineRepository(sql),
    ping: async () => { await sql.get('SELECT 1') },
    close: () => sql.close()
  }
}

/** The configuration's `database` (src/config.ts). */
export interface DatabaseSettings {
  url?: string | undefined
  poolSize?: number | undefined
}

/**
 * The database the configuration names: PostgreSQL for `url`, otherwise
 * SQLite at `sqlitePath` (in the data directory). Each driver is loaded only
 * when used.
 */
export async function openDatabase (settings: DatabaseSettings, sqlitePath: string): Promise<Database> {
  const url = settings.url
  if (url === undefined) {
    const { SqliteClient } = await import('./sqlite-client.js')
    const sql = new SqliteClient(sqlitePath)
    try {
      return await databaseOver(sql, { userVersion: sql.pragma('user_version') as number })
    } catch (err) {
      await sql.close()
      throw err
    }
  }
  const { PostgresClient } = await import('./postgres-client.js')
  const sql = new PostgresClient(url, { max: settings.poolSize })
  try {
    return await databaseOver(sql)
  } catch (err) {
    await sql.close()
    throw redactError(err, url)
  }
}
