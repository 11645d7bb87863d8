import { createHash, randomBytes } from 'node:crypto'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Worker } from 'node:worker_threads'
import { execa } from 'execa'
import t from 'tap'
import { Sha256Thread } from '../../src/artifacts/sha256-thread.js'

const shared = (b: Buffer) => {
  const view = new Uint8Array(new SharedArrayBuffer(b.length))
  view.set(b)
  return view
}
const workerOf = (thread: Sha256Thread) => (thread as unknown as { current?: { worker: Worker } }).current?.worker

t.test('streams in one thread hash independently, in order, and the thread is replaced after it dies', async (t) => {
  const thread = new Sha256Thread()
  t.teardown(() => thread.close())
  const a = randomBytes(3 * 1024 * 1024 + 7)
  const b = randomBytes(1000)
  const sa = thread.open()
  const sb = thread.open()
  const pieces = [shared(a.subarray(0, 1024 * 1024)), shared(a.subarray(1024 * 1024))]
  // Interleaved, without waiting between updates.
  await Promise.all([sa.update(pieces[0]!), sb.update(shared(b)), sa.update(pieces[1]!)])
  t.equal(await sa.digest(), createHash('sha256').update(a).digest('hex'))
  t.equal(await sb.digest(), createHash('sha256').update(b).digest('hex'))
  t.equal(await thread.open().digest(), createHash('sha256').digest('hex'), 'no update: the digest of nothing')
  t.throws(() => thread.open().update(Buffer.from('x')), TypeError, 'memory the thread cannot see is refused')

  // An exception in the thread: every stream waiting on it fails with what happened.
  const open = thread.open()
  const updated = open.update(shared(a))
  workerOf(thread)!.postMessage({ id: -1, op: 'update', buffer: new SharedArrayBuffer(1), offset: 0, length: -1 })
  await updated
  await t.rejects(open.digest(), { message: /^the sha256 thread failed: .*length/ })
  t.match(open.error?.message, /the sha256 thread failed/)
  const next = thread.open()
  await next.update(shared(b))
  t.equal(await next.digest(), createHash('sha256').update(b).digest('hex'), 'a new thread took over')
})

t.test('a thread that exits fails its streams; close() ends it', async (t) => {
  const thread = new Sha256Thread()
  const s = thread.open()
  const exit = new Promise((resolve) => workerOf(thread)!.once('exit', resolve))
  await workerOf(thread)!.terminate()
  await exit
  await t.rejects(s.digest(), { message: /^the sha256 thread exited \(code \d+\)$/ })
  await s.update(shared(Buffer.from('x')))
  t.pass('an update after the thread died resolves: its bytes are free')

  const open = thread.open()
  const exited = new Promise((resolve) => workerOf(thread)!.once('exit', resolve))
  await thread.close()
  await exited
  t.equal(workerOf(thread), undefined)
  await t.rejects(open.digest(), { message: 'the sha256 thread was closed' })
  await thread.close()
})

t.test('an idle thread does not keep the process alive', async (t) => {
  const module = pathToFileURL(fileURLToPath(new URL('../../src/artifacts/sha256-thread.ts', import.meta.url))).href
  const script = `import { Sha256Thread } from ${JSON.stringify(module)}
const s = new Sha256Thread().open()
await s.update(new Uint8Array(new SharedArrayBuffer(3)))
console.log(await s.digest())`
  const started = Date.now()
  const { stdout } = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000 })
  t.equal(stdout.trim(), createHash('sha256').update(Buffer.alloc(3)).digest('hex'), 'the digest was awaited: the process did not end early')
  t.comment(`exited after ${Date.now() - started} ms`)
})
