import t from 'tap'
import { DatabaseUnavailable } from '../../src/errors.js'
import { DatabaseLogWriter, MAX_BUFFERED_BYTES } from '../../src/logs/database-log-writer.js'
import type { LogAppend, LogCheckpoint, LogRepository } from '../../src/store/repositories.js'

// The writer's retries, against a repository that fails on demand: before
// its commit, or after it (the answer lost with the connection), which a
// real PostgreSQL cannot be made to do at a chosen moment. The same writer
// on a real PostgreSQL restarted and stopped under it:
// test/store/postgres-restart.test.ts.

type Failure = 'before' | 'after' | undefined

class FlakyRepository implements Pick<LogRepository, 'append' | 'size'> {
  readonly chunks = new Map<number, Buffer>()
  checkpoint: LogCheckpoint | undefined
  fail: Failure
  /** How many appends to fail before `fail` clears itself; Infinity for until cleared. */
  times = Infinity
  appends = 0

  async size () {
    let end = 0
    for (const [offset, data] of this.chunks) end = Math.max(end, offset + data.length)
    return end
  }

  async append (_buildId: string, change: LogAppend) {
    this.appends++
    const fail = this.fail
    if (fail && --this.times <= 0) this.fail = undefined
    if (fail === 'before') throw new DatabaseUnavailable(new Error('connection refused'))
    for (const chunk of change.chunks) {
      if (this.chunks.has(chunk.offset)) throw Object.assign(new Error('duplicate key'), { code: '23505' })
    }
    for (const chunk of change.chunks) this.chunks.set(chunk.offset, Buffer.from(chunk.data))
    if (change.checkpoint) this.checkpoint = change.checkpoint
    if (fail === 'after') throw new DatabaseUnavailable(new Error('Connection terminated unexpectedly'))
  }

  text () {
    return Buffer.concat([...this.chunks].sort(([a], [b]) => a - b).map(([, d]) => d)).toString()
  }
}

const writerOn = (repo: FlakyRepository, mayWrite = () => true) => new DatabaseLogWriter({
  repo: repo as unknown as LogRepository, buildId: 'b', end: 0, maxBytes: 64 * 1024 * 1024, flushMs: 10, written: () => {}, fence: { mayWrite }
})

const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join('')

t.test('a write whose commit went through but whose answer was lost is not written again', async (t) => {
  const repo = new FlakyRepository()
  const writer = writerOn(repo)
  await writer.write(lines(1, 10))
  repo.fail = 'after'
  repo.times = 1
  await writer.note('==> a note\n')
  await writer.write(lines(11, 20))
  await writer.checkpoint({ stdout: { ts: '20', n: 1 } })
  await writer.close()
  t.equal(repo.text(), lines(1, 10) + '==> a note\n' + lines(11, 20), 'each line once, in order')
  t.same(repo.checkpoint, { bytes: repo.text().length, marks: { stdout: { ts: '20', n: 1 } } })
})

t.test('output waits in the writer while the database does not answer, then goes in once', async (t) => {
  const repo = new FlakyRepository()
  const writer = writerOn(repo)
  repo.fail = 'before'
  for (let i = 1; i <= 100; i++) await writer.write(`line ${i}\n`)
  await writer.checkpoint({ stdout: { ts: '100', n: 1 } })
  await writer.note('==> noted while down\n')
  t.equal(repo.chunks.size, 0, 'nothing written yet; every call returned')
  await new Promise((resolve) => setTimeout(resolve, 400))
  repo.fail = undefined
  await writer.close()
  t.equal(repo.text(), lines(1, 100) + '==> noted while down\n')
  t.same(repo.checkpoint, { bytes: lines(1, 100).length, marks: { stdout: { ts: '100', n: 1 } } },
    'the checkpoint covers what was written before it was asked for')
  t.ok(repo.appends > 3, `written again after failures (${repo.appends} appends)`)
})

t.test('beyond the buffer, writes wait for the database', async (t) => {
  const repo = new FlakyRepository()
  const writer = writerOn(repo)
  repo.fail = 'before'
  const block = Buffer.alloc(1024 * 1024, 'x')
  for (let i = 0; i < MAX_BUFFERED_BYTES / block.length - 1; i++) await writer.write(block)
  let returned = false
  const last = writer.write(block).then(() => { returned = true })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.notOk(returned, `a write that fills ${MAX_BUFFERED_BYTES} bytes waits`)
  repo.fail = undefined
  await last
  t.ok(returned, 'and returns once the database took the output')
  await writer.close()
  t.equal(await repo.size(), MAX_BUFFERED_BYTES)
})

t.test('once the log may no longer be written, closing gives up instead of waiting for the database', async (t) => {
  const repo = new FlakyRepository()
  let may = true
  const writer = writerOn(repo, () => may)
  repo.fail = 'before'
  await writer.write(lines(1, 10))
  may = false
  const started = performance.now()
  await writer.close()
  t.ok(performance.now() - started < 1000, 'close returned')
  t.equal(repo.chunks.size, 0, 'nothing written: the next supervisor re-reads it from the checkpoint')
})

t.test('a failure that is not the database\'s absence is not retried', async (t) => {
  const repo = new FlakyRepository()
  const writer = writerOn(repo)
  repo.chunks.set(0, Buffer.from('someone else\n'))
  await t.rejects(writer.note('==> mine\n'), { code: '23505' }, 'a second writer of an offset is refused, as before')
  await t.rejects(writer.write('more\n'), { code: '23505' }, 'and every later write says so')
  await writer.close()
})
