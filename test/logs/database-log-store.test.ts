import { join } from 'node:path'
import { text } from 'node:stream/consumers'
import t, { type Test } from 'tap'
import { DatabaseLogStore } from '../../src/logs/database-log-store.js'
import { openDatabase } from '../../src/store/open-database.js'
import type { Database } from '../../src/store/repositories.js'
import { startPostgres } from '../postgres-server.js'
import { tempDir } from '../helpers.js'
import { logStoreContract } from './log-store-contract.js'

// Logs as chunks in the database: the contract on SQLite and on a real
// PostgreSQL, and what replicas on one PostgreSQL rely on: a follower on one
// sees what another writes, and two writers of one log cannot interleave.

const FLUSH_MS = 20
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, FLUSH_MS * 5))

t.test('on SQLite', async (t) => {
  logStoreContract(t, async (t, maxBytes) => {
    const db = await openDatabase({}, join(await tempDir(t), 'state.db'))
    t.teardown(() => db.close())
    return { store: new DatabaseLogStore(db.logs, { maxBytes, flushMs: FLUSH_MS }), settle }
  })
})

t.test('on PostgreSQL', async (t) => {
  const server = await startPostgres(t)
  let n = 0
  const database = async (t: Test): Promise<Database> => {
    const db = await openDatabase({ url: await server.createDatabase(`logs_${++n}`) }, '')
    t.teardown(() => db.close())
    return db
  }

  logStoreContract(t, async (t, maxBytes) => ({ store: new DatabaseLogStore((await database(t)).logs, { maxBytes, flushMs: FLUSH_MS }), settle }))

  t.test('a follower on another replica gets every line, in order, within a second', async (t) => {
    const url = await server.createDatabase(`logs_${++n}`)
    const [a, b] = await Promise.all([openDatabase({ url }, ''), openDatabase({ url }, '')])
    t.teardown(async () => { await a.close(); await b.close() })
    const writing = new DatabaseLogStore(a.logs, { maxBytes: 1 << 24, flushMs: 200 })
    const following = new DatabaseLogStore(b.logs, { maxBytes: 1 << 24, pollMs: 500 })
    let done = false
    const seen: Array<{ at: number, text: string }> = []
    const body = following.read('r1', 0, true, async () => done, new AbortController().signal)
    const reading = (async () => { for await (const c of body) seen.push({ at: Date.now(), text: String(c) }) })()
    const writer = await writing.open('r1', undefined)
    const lines: string[] = []
    let worst = 0
    for (let i = 0; i < 40; i++) {
      const line = `line ${i}\n`
      lines.push(line)
      const wrote = Date.now()
      await writer.write(line)
      if (i % 10 === 0) await writer.checkpoint({ stdout: { ts: `2026-01-01T00:00:${String(i).padStart(2, '0')}.000000000Z`, n: 1 } })
      await new Promise((resolve) => setTimeout(resolve, 50))
      if (i === 20) {
        // Wait until the follower has it, and time that.
        while (!seen.map((s) => s.text).join('').includes(line)) await new Promise((resolve) => setTimeout(resolve, 10))
        worst = Date.now() - wrote
      }
    }
    // As the log pump ends: a checkpoint of everything, then close.
    await writer.checkpoint({ stdout: { ts: '2026-01-01T00:01:00.000000000Z', n: 1 } })
    await writer.close()
    // The supervisor records the final state, then notes it in the log.
    done = true
    await new Promise((resolve) => setTimeout(resolve, 300))
    await writing.note('r1', 'build succeeded')
    await reading
    t.equal(seen.map((s) => s.text).join(''), lines.join('') + '==> cosa-buildd: build succeeded\n',
      'every line once, in order, and the note written after the build ended')
    t.ok(worst < 1000, `a line written on replica A reached the follower on replica B after ${worst} ms`)
  })

  t.test('two writers of one log collide instead of interleaving', async (t) => {
    const db = await database(t)
    const one = new DatabaseLogStore(db.logs, { maxBytes: 1 << 20, flushMs: FLUSH_MS })
    const two = new DatabaseLogStore(db.logs, { maxBytes: 1 << 20, flushMs: FLUSH_MS })
    const first = await one.open('c1', undefined)
    const second = await two.open('c1', undefined)
    await first.write('from the first\n')
    await first.checkpoint({})
    await t.rejects(second.write('from the second\n').then(() => second.checkpoint({})),
      { code: '23505' }, 'the second writer\'s chunk is refused at the same offset')
    t.equal(await text(one.read('c1', 0, false, async () => true, new AbortController().signal)), 'from the first\n')
    await first.close()
  })
})
