import t from 'tap'
import { readMigrations } from '../../src/store/migrations.js'
import { openDatabase } from '../../src/store/open-database.js'
import type { Database } from '../../src/store/repositories.js'
import { PG_PASSWORD, startPostgres } from '../postgres-server.js'
import { storeContract } from './contract.js'

// The contract on a real PostgreSQL 15, a fresh database per test.

const server = await startPostgres(t)
let n = 0

storeContract(t, async (t) => {
  const url = await server.createDatabase(`contract_${++n}`)
  let db: Database = await openDatabase({ url, poolSize: 10 }, '')
  t.teardown(() => db.close())
  return {
    db,
    reopen: async () => {
      await db.close()
      db = await openDatabase({ url }, '')
      return db
    }
  }
})

t.test('a second start migrates nothing; one running build per stream is an index', async (t) => {
  const url = await server.createDatabase('indexes')
  const [a, b] = await Promise.all([openDatabase({ url }, ''), openDatabase({ url }, '')])
  t.teardown(async () => { await a.close(); await b.close() })
  t.equal(a.dialect, 'postgres')
  const pg = (await import('pg')).default
  const client = new pg.Client(url)
  await client.connect()
  t.teardown(() => client.end())
  t.same((await client.query("SELECT version FROM schema_versions WHERE name = 'database'")).rows, [{ version: (await readMigrations('postgres')).length }])
  await client.query("INSERT INTO builds (id, stream, state, request, created_at) VALUES ('r1', 's', 'running', '{}', 'now')")
  await t.rejects(client.query("INSERT INTO builds (id, stream, state, request, created_at) VALUES ('r2', 's', 'running', '{}', 'now')"),
    { code: '23505' }, 'a second running build of a stream is refused by the database itself')
  t.same((await client.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'builds' AND column_name IN ('engine', 'arch') ORDER BY 1")).rows
    .map((r: { column_name: string }) => r.column_name), ['arch', 'engine'], 'room for the engine and arch of a build')
})

t.test('two claimers at once on one stream, 50 times: one claim each round, never an error', async (t) => {
  const db = await openDatabase({ url: await server.createDatabase('race'), poolSize: 4 }, '')
  t.teardown(() => db.close())
  await db.streams.putStream({ name: 's', config: { url: 'file:///x', ref: 'main' }, image: 'i', platforms: [], timeoutSeconds: 60, keep: 10,
    resources: {}, recipe: [], createdAt: 'c', updatedAt: 'u' })
  const request = { force: false, skipPrune: false }
  let claims = 0
  for (let round = 0; round < 50; round++) {
    for (const id of [`a${round}`, `b${round}`]) await db.builds.insertBuild({ id, stream: 's', request, createdAt: 'now' }, undefined, { type: 'build.queued', time: 't' })
    const both = await Promise.all([1, 2].map(() => db.builds.claimNext(10, 't', 'preparing', { type: 'build.started', time: 't' }, { owner: 'r', ms: 60_000 })))
    const won = both.filter(Boolean)
    claims += won.length
    if (won.length !== 1 || won[0]!.build.id !== `a${round}`) t.fail(`round ${round}: ${won.map((c) => c!.build.id).join(', ') || 'no claim'}`)
    await db.builds.transition(`a${round}`, ['running'], 'succeeded', {}, { type: 'build.finished', time: 't' })
    await db.builds.transition(`b${round}`, ['queued'], 'cancelled', {}, { type: 'build.finished', time: 't' })
  }
  t.equal(claims, 50, 'exactly one claim per round, the older build')
})

t.test('claimers on several pools at once never start more than maxConcurrent (claims take turns)', async (t) => {
  // Three processes' worth of pools, twelve startable streams, a limit of
  // three, every claim sent at once. The count of running builds in each
  // claim is only right if claims take turns: without that (the advisory
  // lock dropped) most rounds started five or more.
  const url = await server.createDatabase('max_concurrent')
  const pools = await Promise.all([1, 2, 3].map(() => openDatabase({ url, poolSize: 6 }, '')))
  t.teardown(() => Promise.all(pools.map((p) => p.close())))
  const db = pools[0]!
  const STREAMS = 12
  const LIMIT = 3
  const ROUNDS = 10
  for (let i = 0; i < STREAMS; i++) {
    await db.streams.putStream({ name: `s${i}`, config: { url: 'file:///x', ref: 'main' }, image: 'i', platforms: [], timeoutSeconds: 60,
      keep: 10, resources: {}, recipe: [], createdAt: 'c', updatedAt: 'u' })
  }
  const request = { force: false, skipPrune: false }
  const started: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const ids = Array.from({ length: STREAMS }, (_, i) => `r${round}s${i}`)
    for (const [i, id] of ids.entries()) {
      await db.builds.insertBuild({ id, stream: `s${i}`, request, createdAt: 'now' }, undefined, { type: 'build.queued', time: 't' })
    }
    const claims = await Promise.all(ids.map((_, i) => pools[i % pools.length]!.builds.claimNext(LIMIT, 't', 'preparing',
      { type: 'build.started', time: 't' }, { owner: `replica-${i % pools.length}`, ms: 60_000 })))
    const running = (await db.builds.buildsInState(['running'])).length
    started.push(running)
    t.equal(claims.filter(Boolean).length, running, `round ${round}: each claim that came back started one build`)
    for (const id of ids) {
      await db.builds.transition(id, ['running'], 'succeeded', {}, { type: 'build.finished', time: 't' })
      await db.builds.transition(id, ['queued'], 'cancelled', {}, { type: 'build.finished', time: 't' })
    }
  }
  t.comment(`running builds after each round of ${STREAMS} concurrent claims (limit ${LIMIT}): ${started.join(' ')}`)
  t.same(started, Array(ROUNDS).fill(LIMIT), 'every round started exactly the limit, never more')
})

t.test('the password never shows in an error', async (t) => {
  const url = `postgres://postgres:${PG_PASSWORD}@127.0.0.1:${server.port}/no_such_database`
  const err = await openDatabase({ url }, '').then(() => undefined, (e: Error) => e)
  t.ok(err, 'opening a missing database fails')
  t.match(err!.message, /no_such_database/)
  t.notMatch(err!.message, PG_PASSWORD, 'the password is redacted')
  t.match(err!.message, /postgres:\*\*\*@127\.0\.0\.1/)
})

t.test('queue hints between replicas: NOTIFY wakes a listener, which comes back after its connection is killed', async (t) => {
  const url = await server.createDatabase('hints')
  const [a, b] = [await openDatabase({ url }, ''), await openDatabase({ url }, '')]
  t.teardown(async () => { await a.close(); await b.close() })
  let heard = 0
  const stop = a.onQueueHint(() => { heard++ })
  t.teardown(stop)
  const until = async (what: string, fn: () => boolean) => {
    for (const deadline = Date.now() + 10_000; !fn();) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  await until('the listener to connect (it wakes once then)', () => heard === 1)
  await b.hintQueue()
  await until('the hint', () => heard === 2)
  const pg = (await import('pg')).default
  const admin = new pg.Client(url)
  await admin.connect()
  t.teardown(() => admin.end())
  const { LISTENER_NAME } = await import('../../src/store/postgres-client.js')
  const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [LISTENER_NAME])
  t.equal(killed.rowCount, 1, 'the listener\'s connection is killed')
  await until('the listener to reconnect and wake once', () => heard === 3)
  await b.hintQueue()
  await until('a hint after the reconnect', () => heard === 4)
  t.equal(heard, 4, 'each hint heard once, and one wake per (re)connect')
})
