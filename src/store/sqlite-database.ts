import Database from 'better-sqlite3'

/**
 * A connection to the service's SQLite file, set up alike for every store
 * on it: WAL (readers never wait for the writer), fsync at checkpoints, a
 * wait rather than an error when another connection holds the lock, and
 * foreign keys enforced.
 */
export function openDatabase (path: string) {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.pragma('busy_timeout = 5000')
  db.pragma('foreign_keys = ON')
  return db
}
