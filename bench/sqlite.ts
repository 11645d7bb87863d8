// The store's hot statements on better-sqlite3 and on Node's built-in
// node:sqlite, side by side in one run: whether the built-in driver could
// replace the native dependency. Same schema, pragmas, statements and
// prepared-statement reuse as src/store/sqlite-client.ts, a database on disk.
//   npm run bench bench/sqlite.ts
import Database from 'better-sqlite3'
import { randomUUID } from 'node:crypto'
import { mkdtemp } from 'node:fs/promises'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fmt, median } from './lib.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
// Per round; submits leave ROUNDS × this many builds in the table the other statements read.
const OPS = Number(process.env.BENCH_OPS ?? 2_000)

const schema = `
  CREATE TABLE builds (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, stream TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, message TEXT, exit_code INTEGER, request TEXT NOT NULL, config_commit TEXT,
    container_id TEXT, result TEXT, outcome TEXT, meta_json TEXT, result_token_hash TEXT, created_at TEXT NOT NULL,
    started_at TEXT, finished_at TEXT, cancel_requested_at TEXT);
  CREATE INDEX builds_state_seq ON builds (state, seq);
  CREATE INDEX builds_stream_seq ON builds (stream, seq);
  CREATE TABLE idempotency_keys (scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
    build_id TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (scope, key));`
const pragmas = ['journal_mode = WAL', 'synchronous = NORMAL', 'busy_timeout = 5000', 'foreign_keys = ON']
const COLS = `seq, id, stream, state, reason, message, exit_code, request, config_commit, container_id,
  result, created_at, started_at, finished_at, cancel_requested_at`
const SQL = {
  prior: 'SELECT fingerprint, build_id FROM idempotency_keys WHERE scope = ? AND key = ?',
  insert: `INSERT INTO builds (id, stream, state, request, created_at) VALUES (?, ?, 'queued', ?, ?)`,
  key: 'INSERT INTO idempotency_keys (scope, key, fingerprint, build_id, created_at) VALUES (?, ?, ?, ?, ?)',
  get: `SELECT ${COLS} FROM builds WHERE id = ?`,
  list: `SELECT ${COLS} FROM builds WHERE stream = ? ORDER BY seq DESC LIMIT ?`,
  position: "SELECT COUNT(*) AS n FROM builds WHERE state = 'queued' AND seq <= ?",
  transition: `UPDATE builds SET state = ?, message = ? WHERE id = ? AND state IN (?, ?) RETURNING ${COLS}`
}
type Statement = { get: (...a: any[]) => unknown, all: (...a: any[]) => unknown[], run: (...a: any[]) => unknown }
interface Driver { name: string, sql: (s: string) => Statement, tx: <T>(fn: () => T) => T, close: () => void }

function betterSqlite (path: string): Driver {
  const db = new Database(path)
  for (const p of pragmas) db.pragma(p)
  db.exec(schema)
  const cache = new Map<string, Database.Statement>()
  return {
    name: `better-sqlite3 (SQLite ${(db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v})`,
    sql: (s) => cache.get(s) ?? cache.set(s, db.prepare(s)).get(s)!,
    tx: (fn) => db.transaction(fn)(),
    close: () => db.close()
  }
}

function nodeSqlite (path: string): Driver {
  const db = new DatabaseSync(path)
  for (const p of pragmas) db.exec(`PRAGMA ${p}`)
  db.exec(schema)
  const cache = new Map<string, ReturnType<DatabaseSync['prepare']>>()
  const begin = db.prepare('BEGIN')
  const commit = db.prepare('COMMIT')
  const rollback = db.prepare('ROLLBACK')
  return {
    name: `node:sqlite (SQLite ${(db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v})`,
    sql: (s) => (cache.get(s) ?? cache.set(s, db.prepare(s)).get(s)!) as Statement,
    // node:sqlite has no transaction helper: what better-sqlite3's does, by hand.
    tx: (fn) => {
      begin.run()
      try {
        const r = fn()
        commit.run()
        return r
      } catch (e) {
        rollback.run()
        throw e
      }
    },
    close: () => db.close()
  }
}

/** Operations per second of fn over `ops` calls; the median of ROUNDS rounds. */
function rate (fn: (i: number) => void, ops = OPS) {
  const rates: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < ops; i++) fn(r * ops + i)
    rates.push(ops / (Number(process.hrtime.bigint() - t0) / 1e9))
  }
  return median(rates)
}

async function measure (open: (path: string) => Driver) {
  const d = open(join(await mkdtemp(join(tmpdir(), 'cosa-bench-sqlite-')), 'db'))
  const ids: string[] = []
  const request = JSON.stringify({ force: true, platforms: ['qemu'] })
  const now = new Date().toISOString()
  // Admission as the store does it: key lookup, insert, key insert, read back, in one transaction.
  const submit = rate((i) => d.tx(() => {
    const key = `key-${i}`
    if (d.sql(SQL.prior).get('submit', key)) return
    const id = randomUUID()
    d.sql(SQL.insert).run(id, `s${i % 10}`, request, now)
    d.sql(SQL.key).run('submit', key, 'f', id, now)
    d.sql(SQL.get).get(id)
    ids.push(id)
  }))
  const get = rate((i) => { d.sql(SQL.get).get(ids[i % ids.length]) }, 10 * OPS)
  const list = rate((i) => { d.sql(SQL.list).all(`s${i % 10}`, 50) }, OPS)
  const position = rate((i) => { d.sql(SQL.position).get(i % ids.length) })
  const transition = rate((i) => { d.sql(SQL.transition).get(i % 2 ? 'queued' : 'running', `m${i}`, ids[i % ids.length], 'queued', 'running') })
  d.close()
  return { name: d.name, submit, get, list, position, transition }
}

// Alternating, so neither driver always runs on the warmer machine.
const runs: Awaited<ReturnType<typeof measure>>[] = []
for (const open of [betterSqlite, nodeSqlite, betterSqlite, nodeSqlite]) runs.push(await measure(open))
const best = (name: string) => {
  const mine = runs.filter((r) => r.name === name)
  const pick = (k: 'submit' | 'get' | 'list' | 'position' | 'transition') => Math.max(...mine.map((r) => r[k]))
  return { name, submit: pick('submit'), get: pick('get'), list: pick('list'), position: pick('position'), transition: pick('transition') }
}
const [a, b] = [best(runs[0]!.name), best(runs[1]!.name)]
const rows: [string, keyof typeof a][] = [
  ['submit: key lookup + insert + key + read back (transaction)', 'submit'],
  ['get a build by id', 'get'],
  ['list 50 newest of a stream', 'list'],
  ['queue position (COUNT)', 'position'],
  ['transition (UPDATE … RETURNING)', 'transition']
]
console.log(`\nNode ${process.version}; ${fmt(ROUNDS * OPS)} builds in the table, median of ${ROUNDS} rounds, best of 2 runs each.\n`)
console.log(`| operation | ${a.name} ops/s | ${b.name} ops/s | node:sqlite / better-sqlite3 |`)
console.log('|---|---:|---:|---:|')
for (const [label, k] of rows) {
  console.log(`| ${label} | ${fmt(a[k] as number)} | ${fmt(b[k] as number)} | ${fmt((b[k] as number) / (a[k] as number), 2)}× |`)
}
