import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { text } from 'node:stream/consumers'
import type { Test } from 'tap'
import type { LogStore } from '../../src/logs/log-store.js'
import { tempDir } from '../helpers.js'

// What every log store does (file-log-store.ts, database-log-store.ts):
// exact resumes at checkpoints, a bounded log that still takes notes,
// reading from an offset and following, attachments. Each store's test file
// runs it; `settle` waits until output written is where a reader sees it.

export interface LogStoreUnderTest {
  store: LogStore
  /** Lets buffered output reach the store (the database writer gathers it briefly). */
  settle: () => Promise<void>
}

export type MakeLogStore = (t: Test, maxBytes: number) => Promise<LogStoreUnderTest>

const readAll = (store: LogStore, id: string, offset = 0) =>
  text(store.read(id, offset, false, async () => true, new AbortController().signal))

export function logStoreContract (t: Test, make: MakeLogStore) {
  t.test('a resume cuts back to the checkpoint and continues after its marks', async (t) => {
    const { store, settle } = await make(t, 1024 * 1024)
    await store.note('b1', 'starting')
    t.equal(await store.resume('b1'), undefined, 'nothing to resume before the container log was copied')
    const marks = { stdout: { ts: '2026-01-01T00:00:02.000000001Z', n: 1 } }
    const writer = await store.open('b1', undefined)
    await writer.write('one\ntwo\n')
    await writer.checkpoint(marks)
    await store.note('b1', 'through the writer')
    // The process ends after the checkpoint: this line reached the store, not the checkpoint.
    await writer.write('three\n')
    await settle()
    t.match(await readAll(store, 'b1'), /three\n$/, 'written, not yet covered')
    await writer.close()
    t.same(await store.resume('b1'), marks)
    t.equal(await readAll(store, 'b1'), '==> cosa-buildd: starting\none\ntwo\n',
      'what came after the checkpoint is dropped: the next copy reads it again')
    await store.note('b1', 'restarted')
    t.same(await store.resume('b1'), marks, 'a note moves the checkpoint past itself')
    t.match(await readAll(store, 'b1'), /two\n==> cosa-buildd: restarted\n$/)
  })

  t.test('a note made while the writer closes is kept, after the writer\'s last checkpoint', async (t) => {
    const { store } = await make(t, 1024 * 1024)
    const marks = { stdout: { ts: '2026-01-01T00:00:02.000000001Z', n: 1 } }
    // A cancel notes why while the pump ends: this once failed the build
    // (both saved the file store's checkpoint through one .tmp file).
    for (let i = 0; i < 20; i++) {
      const id = `close${i}`
      const writer = await store.open(id, undefined)
      await writer.write('out\n')
      const results = await Promise.allSettled([writer.checkpoint(marks), writer.close(), store.note(id, 'cancelled')])
      t.same(results.filter((r) => r.status === 'rejected'), [], `round ${i}: nothing failed`)
      t.same(await store.resume(id), marks, `round ${i}: resumes after the last marks`)
      t.equal(await readAll(store, id), 'out\n==> cosa-buildd: cancelled\n', `round ${i}: the note is kept`)
    }
  })

  t.test('the log is bounded and says so; service notes still get in', async (t) => {
    const { store } = await make(t, 40)
    const writer = await store.open('b2', undefined)
    for (let i = 0; i < 20; i++) await writer.write(`line ${i}\n`)
    await store.note('b2', 'build failed')
    await writer.close()
    const log = await readAll(store, 'b2')
    t.ok(Buffer.byteLength(log) < 40 + 120, `bounded: ${Buffer.byteLength(log)} bytes`)
    t.match(log, /log limit reached/)
    t.notMatch(log, /line 19/)
    t.match(log, /build failed\n$/)
    t.equal(await store.size('b2'), Buffer.byteLength(log), 'the size is what a reader gets')
    const again = await store.open('b2', undefined)
    await again.write('more\n')
    await again.close()
    t.notMatch(await readAll(store, 'b2'), /more/, 'a full log stays full after a restart')
  })

  t.test('reading from an offset, and following until done', async (t) => {
    const { store } = await make(t, 1024)
    await store.note('b3', 'hello')
    let done = false
    const body = store.read('b3', 4, true, async () => done, new AbortController().signal)
    const reading = text(body)
    await new Promise((resolve) => setTimeout(resolve, 50))
    await store.note('b3', 'world')
    done = true
    t.equal(await reading, 'cosa-buildd: hello\n==> cosa-buildd: world\n')
    t.equal(await readAll(store, 'b3', 1000), '', 'past the end: nothing')
    t.equal(await readAll(store, 'nothing-yet'), '', 'a build with no log yet reads empty')
  })

  t.test('a big log reads back byte for byte, from any offset', async (t) => {
    const { store } = await make(t, 16 * 1024 * 1024)
    const writer = await store.open('b4', undefined)
    const lines: string[] = []
    for (let i = 0; i < 30_000; i++) lines.push(`line ${i} ${'x'.repeat(i % 97)}\n`)
    for (let i = 0; i < lines.length; i += 1000) await writer.write(Buffer.from(lines.slice(i, i + 1000).join('')))
    await writer.checkpoint({})
    await writer.close()
    t.equal(await readAll(store, 'b4'), lines.join(''), 'exact')
    t.equal(await store.size('b4'), Buffer.byteLength(lines.join('')))
    const from = 123_457
    t.equal(await readAll(store, 'b4', from), Buffer.from(lines.join('')).subarray(from).toString(), 'from an offset inside a piece')
  })

  t.test('boot-test files are kept with the log and removed with it', async (t) => {
    const { store } = await make(t, 1024)
    const dir = await tempDir(t)
    await writeFile(join(dir, 'console.txt'), 'Linux version 6.1\n')
    await store.keepAttachment('b5', 'console.txt', join(dir, 'console.txt'))
    await store.note('b5', 'done')
    const kept = await store.attachment('b5', 'console.txt')
    t.equal(kept?.size, 18)
    t.equal(await text(kept!.body), 'Linux version 6.1\n')
    t.equal(await store.attachment('b5', 'journal.txt'), undefined, 'none kept: undefined')
    await store.remove('b5')
    t.equal(await store.attachment('b5', 'console.txt'), undefined)
    t.equal(await store.size('b5'), 0)
    t.equal(await readAll(store, 'b5'), '')
  })
}
