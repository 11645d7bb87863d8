import t from 'tap'
import { DatabaseUnavailable } from '../../src/errors.js'
import { DatabaseLogStore } from '../../src/logs/database-log-store.js'
import { openDatabase } from '../../src/store/open-database.js'
import { startPostgres } from '../postgres-server.js'

// PostgreSQL restarted (`pg_ctl restart -m fast`) or down for a while under
// the store: what was in flight fails with DatabaseUnavailable (the API's
// 503) instead of hanging or ending the process, the pool connects again
// once the server is back, and a build's log writer keeps its output and
// writes each line once.

const server = await startPostgres(t)
const url = await server.createDatabase('restart')
const db = await openDatabase({ url, poolSize: 4 }, '')
t.teardown(() => db.close())
await db.streams.putStream({ name: 's', config: { url: 'file:///x', ref: 'main' }, image: 'i', platforms: [], timeoutSeconds: 60, keep: 10,
  resources: {}, recipe: [], createdAt: 'c', updatedAt: 'u' })
await db.builds.insertBuild({ id: 'b1', stream: 's', request: { force: false, skipPrune: false }, createdAt: 'now' }, undefined,
  { type: 'build.queued', time: 't' })

/** Queries until one answers; how long that took. */
async function answeredAfter (since: number) {
  for (;;) {
    try {
      await db.builds.getBuild('b1')
      return Math.round(performance.now() - since)
    } catch (err) {
      if (!(err instanceof DatabaseUnavailable)) throw err
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
}

t.test('a restart fails what was in flight with DatabaseUnavailable, and the store answers again', async (t) => {
  // One transaction waits in the database, one holds its connection while it waits in JavaScript.
  const { PostgresClient } = await import('../../src/store/postgres-client.js')
  const sql = new PostgresClient(url, { max: 2 })
  t.teardown(() => sql.close())
  // Their failures are taken as they come (an unhandled rejection would end the test).
  const failure = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => err)
  const inDatabase = failure(sql.transaction((tx) => tx.get('SELECT pg_sleep(30)')))
  const inJs = failure(sql.transaction(async (tx) => {
    await tx.get('SELECT 1')
    await new Promise((resolve) => setTimeout(resolve, 3000))
    return tx.get('SELECT 1')
  }))
  await new Promise((resolve) => setTimeout(resolve, 300))
  const started = performance.now()
  await server.restart()
  const restartMs = Math.round(performance.now() - started)
  t.type(await inDatabase, DatabaseUnavailable, 'a statement running in the database rejects with DatabaseUnavailable')
  const held = performance.now()
  t.type(await inJs, DatabaseUnavailable, 'a transaction that held its connection rejects with DatabaseUnavailable, not a hang or a crash')
  t.ok(performance.now() - held < 1000, 'at once, not when its next statement is sent')
  const answeredMs = await answeredAfter(started)
  t.ok(await db.builds.getBuild('b1'), 'the store answers again')
  t.ok(await sql.transaction((tx) => tx.get('SELECT 1')), 'transactions work again')
  t.comment(`pg_ctl restart -m fast took ${restartMs} ms; the store answered again ${answeredMs} ms after it began`)
})

t.test('while the server is down, a query rejects at once with DatabaseUnavailable; afterwards it answers', async (t) => {
  const outage = server.outage(2000)
  await new Promise((resolve) => setTimeout(resolve, 800))
  const asked = performance.now()
  const err = await db.builds.getBuild('b1').then(() => undefined, (e: unknown) => e)
  const failedMs = Math.round(performance.now() - asked)
  t.type(err, DatabaseUnavailable, 'the query rejects with DatabaseUnavailable')
  t.match(err, { code: 'BLD_DATABASE_UNAVAILABLE', statusCode: 503, headers: { 'retry-after': '5' } })
  t.ok(failedMs < 2000, `it rejected in ${failedMs} ms, not at the end of the outage`)
  await outage
  t.ok(await db.builds.getBuild('b1'), 'the store answers again after the outage')
})

t.test('a build log written across an outage has each line once', async (t) => {
  const logs = new DatabaseLogStore(db.logs, { maxBytes: 64 * 1024 * 1024, flushMs: 20 })
  const writer = await logs.open('b1', undefined)
  const LINES = 3000
  let outage: Promise<void> | undefined
  for (let i = 1; i <= LINES; i++) {
    await writer.write(`line ${i}\n`)
    if (i % 100 === 0) await writer.checkpoint({ stdout: { ts: String(i), n: 1 } })
    if (i === 500) outage = server.outage(1500)
    await new Promise((resolve) => setImmediate(resolve))
    if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await outage
  await writer.close()
  const text = await new Promise<string>((resolve, reject) => {
    let out = ''
    logs.read('b1', 0, false, async () => true, new AbortController().signal)
      .on('data', (d: Buffer) => { out += d.toString() }).on('end', () => resolve(out)).on('error', reject)
  })
  const lines = text.split('\n').filter((l) => l.startsWith('line '))
  t.equal(lines.length, LINES, `${LINES} lines`)
  t.ok(lines.every((l, i) => l === `line ${i + 1}`), 'each line once, in order')
  t.same(await db.logs.checkpoint('b1'), { bytes: text.length, marks: { stdout: { ts: String(LINES), n: 1 } } },
    'the last checkpoint covers the whole log')
})
