import { readdir, readFile } from 'node:fs/promises'
import type { SqlClient } from './sql-client.js'

// Numbered SQL files per dialect (migrations/<dialect>/NNN-name.sql), applied
// in order, each once, in one transaction with the version they reach
// (schema_versions, name 'database'). `npm run build` copies them into dist.

const NAME = 'database'
/** pg_advisory_xact_lock's key for migrating: any fixed number no other code uses. */
const MIGRATION_LOCK = 0x636f7361

export interface Migration {
  version: number
  name: string
  sql: string
}

export async function readMigrations (dialect: SqlClient['dialect']['name']): Promise<Migration[]> {
  const dir = new URL(`./migrations/${dialect}/`, import.meta.url)
  const files = (await readdir(dir)).filter((f) => /^\d{3}-[\w-]+\.sql$/.test(f)).sort()
  return Promise.all(files.map(async (file, i) => {
    const version = Number(file.slice(0, 3))
    if (version !== i + 1) throw new Error(`migration ${file}: expected number ${i + 1}`)
    return { version, name: file, sql: await readFile(new URL(file, dir), 'utf8') }
  }))
}

/**
 * The version a database reached before schema_versions recorded it: the
 * builds' store counted its steps (1-4) in `user_version`, the webhooks'
 * store its one step in schema_versions 'webhooks'. Webhooks came between
 * steps 3 and 4, so files 001-005 are those steps in the order they shipped.
 */
function legacyVersion (userVersion: number, webhooks: boolean) {
  if (userVersion >= 4) return 5
  if (userVersion === 3 && webhooks) return 4
  return userVersion
}

/** Brings the database to the newest migration; returns the versions applied. */
export async function migrate (client: SqlClient, legacy?: { userVersion: number }): Promise<number[]> {
  const migrations = await readMigrations(client.dialect.name)
  return client.transaction(async (tx) => {
    // Services starting together on one PostgreSQL migrate one after
    // another. The lock is the transaction's (released at its end, whatever
    // becomes of the connection), and it is taken before schema_versions is
    // made: two concurrent CREATE TABLE IF NOT EXISTS of a new table collide
    // in PostgreSQL's catalog (23505 on pg_type).
    if (client.dialect.name === 'postgres') await tx.exec(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`)
    await tx.exec('CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)')
    const row = await tx.get('SELECT version FROM schema_versions WHERE name = ?', [NAME])
    const webhooks = await tx.get("SELECT version FROM schema_versions WHERE name = 'webhooks'")
    const current = row ? row.version as number : legacyVersion(legacy?.userVersion ?? 0, webhooks !== undefined)
    const pending = migrations.filter((m) => m.version > current)
    for (const m of pending) await tx.exec(m.sql)
    if (pending.length || !row) {
      await tx.run(`INSERT INTO schema_versions (name, version) VALUES (?, ?)
                    ON CONFLICT (name) DO UPDATE SET version = excluded.version`, [NAME, Math.max(current, ...pending.map((m) => m.version))])
    }
    return pending.map((m) => m.version)
  })
}
