import Database from 'better-sqlite3'
import type { Row, SqlClient, SqlDialect, SqlRunner } from './sql-client.js'

const dialect: SqlDialect = {
  name: 'sqlite',
  skipLocked: '',
  serializeClaims: undefined,
  lockOutbox: undefined,
  // AUTOINCREMENT's table remembers the highest number ever given.
  latestEventSeq: "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
  nowMs: "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
  // Run inside the claim's transaction: the one connection serializes it.
  nextLeaseToken: 'UPDATE lease_tokens SET value = value + 1 RETURNING value AS token',
  isUniqueViolation: (err) => (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE'
}

/**
 * The service's SQLite file through one better-sqlite3 connection: WAL
 * (readers never wait for the writer), fsync at checkpoints, a wait rather
 * than an error when another process holds the lock, foreign keys enforced.
 *
 * better-sqlite3 runs each statement synchronously, so a statement outside a
 * transaction needs no more than a prepared statement. A transaction spans
 * awaits, though: while one is open, every other caller waits for it, or its
 * statements would land inside it on the one connection.
 */
export class SqliteClient implements SqlClient {
  readonly dialect = dialect
  readonly #db: Database.Database
  readonly #statements = new Map<string, Database.Statement>()
  #open: Promise<unknown> | undefined

  constructor (path: string) {
    this.#db = new Database(path)
    this.#db.pragma('journal_mode = WAL')
    this.#db.pragma('synchronous = NORMAL')
    this.#db.pragma('busy_timeout = 5000')
    this.#db.pragma('foreign_keys = ON')
  }

  // Preparing costs more than running these small queries: keep each once.
  #prepare (sql: string) {
    let stmt = this.#statements.get(sql)
    if (!stmt) {
      stmt = this.#db.prepare(sql)
      this.#statements.set(sql, stmt)
    }
    return stmt
  }

  readonly #runner: SqlRunner = {
    get: async (sql, args = []) => this.#prepare(sql).get(...args) as Row | undefined,
    all: async (sql, args = []) => this.#prepare(sql).all(...args) as Row[],
    run: async (sql, args = []) => this.#prepare(sql).run(...args).changes,
    exec: async (script) => { this.#db.exec(script) }
  }

  // Checked right before the statement runs, with no await in between, so
  // that no transaction can have begun meanwhile. Without one open (nearly
  // always) the statement runs at once: reads of a finished build are the
  // API's hottest path.
  #outside<T> (statement: () => T): Promise<T> {
    if (!this.#open) {
      try {
        return Promise.resolve(statement())
      } catch (err) {
        return Promise.reject(err)
      }
    }
    return this.#open.catch(() => undefined).then(() => this.#outside(statement))
  }

  get (sql: string, args: readonly unknown[] = []) {
    return this.#outside(() => this.#prepare(sql).get(...args) as Row | undefined)
  }

  all (sql: string, args: readonly unknown[] = []) {
    return this.#outside(() => this.#prepare(sql).all(...args) as Row[])
  }

  run (sql: string, args: readonly unknown[] = []) {
    return this.#outside(() => this.#prepare(sql).run(...args).changes)
  }

  async exec (script: string) {
    return this.#outside(() => { this.#db.exec(script) })
  }

  /** A pragma's value (the schema version of databases from before schema_versions). */
  pragma (name: string): unknown {
    return this.#db.pragma(name, { simple: true })
  }

  async transaction<T> (work: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.#outside(() => {
      const done = this.#transact(work)
      const settled = () => { if (this.#open === done) this.#open = undefined }
      this.#open = done
      done.then(settled, settled)
      return done
    })
  }

  async #transact<T> (work: (tx: SqlRunner) => Promise<T>) {
    this.#prepare('BEGIN IMMEDIATE').run()
    try {
      const result = await work(this.#runner)
      this.#prepare('COMMIT').run()
      return result
    } catch (err) {
      if (this.#db.inTransaction) this.#prepare('ROLLBACK').run()
      throw err
    }
  }

  async close () {
    await this.#outside(() => this.#db.close())
  }
}
