// What the repositories need of a database: statements with `?`
// placeholders, and transactions. Each repository is written once against
// this; sqlite-client.ts and postgres-client.ts carry out the statements, and
// the few places where the two dialects differ are named here.

export type Row = Record<string, any>

/** A column's NULL as a field left out. */
export const optional = <T>(v: T | null): T | undefined => (v === null ? undefined : v)

export interface SqlRunner {
  get(sql: string, args?: readonly unknown[]): Promise<Row | undefined>
  all(sql: string, args?: readonly unknown[]): Promise<Row[]>
  /** Runs a statement; how many rows it changed. */
  run(sql: string, args?: readonly unknown[]): Promise<number>
  /** Several statements without parameters (a migration). */
  exec(script: string): Promise<void>
}

export interface SqlClient extends SqlRunner {
  readonly dialect: SqlDialect
  /**
   * Wake-up hints between processes on one database (PostgreSQL's
   * LISTEN/NOTIFY; SQLite has one process and none). A hint may be lost:
   * listeners always poll too.
   */
  notify?(channel: string, payload?: string): Promise<void>
  /**
   * Calls `fn` with each notification's payload on `channel`, and with
   * undefined after each reconnect (one may have been missed); returns the stop.
   */
  listen?(channel: string, fn: (payload: string | undefined) => void): () => Promise<void>
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: SqlRunner) => Promise<T>): Promise<T>
  close(): Promise<void>
}

export interface SqlDialect {
  readonly name: 'sqlite' | 'postgres'
  /**
   * Appended to the claim's choice of a queued build: concurrent claimers on
   * PostgreSQL each take a different row instead of queueing for one.
   */
  readonly skipLocked: string
  /**
   * Run first in a claim's transaction, and held to its commit: claims take
   * turns, so each counts the running builds the one before it committed
   * (otherwise two claims at once may both see room for one more and exceed
   * builds.maxConcurrent). SQLite's one connection serializes them anyway.
   */
  readonly serializeClaims: string | undefined
  /**
   * Run in a transaction before it appends an outbox event, so that events
   * commit in the order of their sequence numbers (a reader resuming after N
   * never misses a number that commits later). SQLite has one writer anyway.
   */
  readonly lockOutbox: string | undefined
  /** The highest outbox sequence number ever given, even once pruned. */
  readonly latestEventSeq: string
  /**
   * The database's clock in milliseconds since the epoch, as an SQL
   * expression: leases expire by one clock, whichever replica reads them.
   */
  readonly nowMs: string
  /** A statement that hands out the next fencing token (column `token`); tokens only grow. */
  readonly nextLeaseToken: string
  /** A unique index refused the statement. */
  isUniqueViolation(err: unknown): boolean
}
