import type { Database } from '../store/repositories.js'
import { DatabaseLogStore } from './database-log-store.js'
import { FileLogStore } from './file-log-store.js'
import type { LogStore } from './log-store.js'

/**
 * Where build logs live: in PostgreSQL when the state does (any replica
 * serves and follows any build's log), else as files in the data directory
 * (one machine; a log is a file operators can read).
 */
export function openLogStore (store: Database, dir: string, maxBytes: number): LogStore {
  return store.dialect === 'postgres' ? new DatabaseLogStore(store.logs, { maxBytes }) : new FileLogStore(dir, maxBytes)
}
