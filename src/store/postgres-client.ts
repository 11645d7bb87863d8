import pg from 'pg'
import { DatabaseUnavailable, isDatabaseUnavailable } from '../errors.js'
import type { Row, SqlClient, SqlDialect, SqlRunner } from './sql-client.js'

/** The advisory lock key claims take turns on ('cosa' as bytes). */
export const CLAIM_LOCK_KEY = 0x636f7361

const dialect: SqlDialect = {
  name: 'postgres',
  skipLocked: 'FOR UPDATE SKIP LOCKED',
  // A transaction-scoped advisory lock, released at the commit: unlike a
  // session lock it cannot outlive its holder or stay behind in a pooler's
  // connection. The key is fixed: there is one queue per database.
  serializeClaims: `SELECT pg_advisory_xact_lock(${CLAIM_LOCK_KEY})`,
  // Held to the commit: an outbox writer that took number N commits before
  // the next one takes N+1. A transaction lock, never a session one (those
  // outlive partitions and break behind PgBouncer).
  lockOutbox: 'LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE',
  latestEventSeq: 'SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS seq FROM events_seq_seq',
  // clock_timestamp, not now(): a lease renewed late in a long transaction
  // must not expire at the transaction's start.
  nowMs: '(extract(epoch FROM clock_timestamp()) * 1000)::bigint',
  nextLeaseToken: "SELECT nextval('lease_tokens') AS token",
  isUniqueViolation: (err) => (err as { code?: string }).code === '23505'
}

// Counts and identity columns are int8, which pg returns as strings; every
// number here is far below 2^53.
const INT8 = 20
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser']
}

/** A broken listener connection is made again after this. */
const LISTEN_RETRY_MS = 1000
/** The listener's application_name, as pg_stat_activity shows it. */
export const LISTENER_NAME = 'cosa-buildd listener'

const numbered = new Map<string, string>()

/** The repositories write `?`; PostgreSQL numbers its parameters. No statement here has a `?` in a literal. */
function positional (sql: string) {
  let text = numbered.get(sql)
  if (text === undefined) {
    let n = 0
    text = sql.replace(/\?/g, () => `$${++n}`)
    numbered.set(sql, text)
  }
  return text
}

// What a server that is restarting, shutting down, unreachable or out of
// connections answers (or how its connections end): SQLSTATE class 08
// (connection exception), 57P01-57P03 (admin/crash shutdown, cannot connect
// now), 53300 (too many connections); the socket's errors; node-postgres's
// own messages for a connection that ended or never came.
const UNAVAILABLE_CODES = new Set(['57P01', '57P02', '57P03', '53300', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT',
  'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN'])
const UNAVAILABLE_MESSAGES = /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Client was closed/i

export function isUnavailable (err: unknown) {
  const { code, message } = (err ?? {}) as { code?: unknown, message?: unknown }
  return (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) ||
    (typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message))
}

/** The driver's failure, as DatabaseUnavailable when the database did not answer. */
const unavailable = (err: unknown) => isUnavailable(err) && !isDatabaseUnavailable(err) ? new DatabaseUnavailable(err) : err

async function query (client: pg.Pool | pg.PoolClient, sql: string, args?: readonly unknown[]) {
  try {
    return await client.query(sql, args as unknown[] | undefined)
  } catch (err) {
    throw unavailable(err)
  }
}

const runner = (client: pg.Pool | pg.PoolClient): SqlRunner => ({
  get: async (sql, args = []) => (await query(client, positional(sql), args)).rows[0] as Row | undefined,
  all: async (sql, args = []) => (await query(client, positional(sql), args)).rows as Row[],
  run: async (sql, args = []) => (await query(client, positional(sql), args)).rowCount ?? 0,
  // Without parameters pg uses the simple protocol, which takes several statements.
  exec: async (script) => { await query(client, script) }
})

/** PostgreSQL through a pool of connections (node-postgres). */
export class PostgresClient implements SqlClient {
  readonly dialect = dialect
  readonly #pool: pg.Pool
  readonly #runner: SqlRunner
  readonly #url: string

  constructor (url: string, options: { max?: number | undefined } = {}) {
    this.#url = url
    this.#pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, types, connectionTimeoutMillis: 10_000 })
    // An idle connection that breaks is replaced at the next checkout; without
    // a listener its error would end the process.
    this.#pool.on('error', () => undefined)
    this.#runner = runner(this.#pool)
  }

  get (sql: string, args?: readonly unknown[]) { return this.#runner.get(sql, args) }
  all (sql: string, args?: readonly unknown[]) { return this.#runner.all(sql, args) }
  run (sql: string, args?: readonly unknown[]) { return this.#runner.run(sql, args) }

  exec (script: string) { return this.#runner.exec(script) }

  async transaction<T> (work: (tx: SqlRunner) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect().catch((err: unknown) => { throw unavailable(err) })
    // A connection that cannot even roll back is broken: the pool drops it.
    let broken: Error | undefined
    // The pool listens for errors of idle connections only: one killed while
    // checked out (the server restarted) would otherwise end the process, or
    // leave the transaction waiting for an answer that never comes.
    let killed!: (err: Error) => void
    const lost = new Promise<never>((_resolve, reject) => {
      killed = (err) => { broken = err; reject(new DatabaseUnavailable(err)) }
    })
    lost.catch(() => undefined)
    client.on('error', killed)
    const step = <R>(p: Promise<R>) => Promise.race([p, lost])
    try {
      await step(query(client, 'BEGIN'))
      const result = await step(work(runner(client)))
      await step(query(client, 'COMMIT'))
      return result
    } catch (err) {
      if (!broken) await client.query('ROLLBACK').catch((rollback: Error) => { broken = rollback })
      throw unavailable(err)
    } finally {
      client.removeListener('error', killed)
      client.release(broken)
    }
  }

  async notify (channel: string, payload = '') {
    await query(this.#pool, 'SELECT pg_notify($1, $2)', [channel, payload])
  }

  // A connection of its own, outside the pool (LISTEN is a session's), made
  // again a second after it breaks (the server restarted, a proxy cut it).
  listen (channel: string, fn: (payload: string | undefined) => void) {
    let client: pg.Client | undefined
    let stopped = false
    let retry: NodeJS.Timeout | undefined
    const again = () => {
      client = undefined
      if (!stopped && !retry) retry = setTimeout(() => { retry = undefined; void connect() }, LISTEN_RETRY_MS).unref()
    }
    const connect = async () => {
      const c = new pg.Client({ connectionString: this.#url, application_name: LISTENER_NAME, connectionTimeoutMillis: 10_000 })
      c.on('error', () => undefined)
      c.on('notification', (n) => fn(n.payload ?? ''))
      try {
        await c.connect()
        await c.query(`LISTEN "${channel}"`)
      } catch {
        await c.end().catch(() => undefined)
        return again()
      }
      if (stopped) return void await c.end().catch(() => undefined)
      client = c
      c.once('end', again)
      fn(undefined)
    }
    void connect()
    return async () => {
      stopped = true
      clearTimeout(retry)
      await client?.end().catch(() => undefined)
    }
  }

  async close () {
    await this.#pool.end()
  }
}
