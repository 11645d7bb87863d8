import { readFile, writeFile } from 'node:fs/promises'
import t from 'tap'
import { BuildLogs } from '../../src/builds/build-logs.js'
import { tempDir } from '../helpers.js'

async function * lines (...items: string[]) {
  for (const l of items) yield l
}

t.test('a resumed log continues after the last line kept, without repeats', async (t) => {
  const logs = new BuildLogs(await tempDir(t), 1024 * 1024)
  await logs.note('b1', 'starting')
  await logs.consume('b1', lines('2026-01-01T00:00:01.000000001Z one', '2026-01-01T00:00:02.000000001Z two'))
  // A crash after the checkpoint: a partial line reached the file, not the cursor.
  await writeFile(logs.path('b1'), (await readFile(logs.path('b1'), 'utf8')) + 'half a li')
  const since = await logs.resumePoint('b1')
  t.equal(since, '2026-01-01T00:00:02.000000001Z')
  // The engine replays from the second (its `since` is whole seconds).
  await logs.consume('b1', lines('2026-01-01T00:00:02.000000001Z two', '2026-01-01T00:00:03.000000001Z three'), since)
  t.equal(await readFile(logs.path('b1'), 'utf8'), '==> cosa-buildd: starting\none\ntwo\nthree\n')
})

t.test('the log is bounded and says so', async (t) => {
  const logs = new BuildLogs(await tempDir(t), 40)
  const many = Array.from({ length: 20 }, (_, i) => `2026-01-01T00:00:${String(i).padStart(2, '0')}.0Z line ${i}`)
  await logs.consume('b2', lines(...many))
  const text = await readFile(logs.path('b2'), 'utf8')
  t.ok(Buffer.byteLength(text) < 40 + 80, `bounded: ${Buffer.byteLength(text)} bytes`)
  t.match(text, /log limit reached/)
  t.notMatch(text, /line 19/)
})

t.test('reading from an offset, and following until done', async (t) => {
  const logs = new BuildLogs(await tempDir(t), 1024)
  await logs.note('b3', 'hello')
  let done = false
  const body = logs.read('b3', 4, true, async () => done, new AbortController().signal)
  const chunks: string[] = []
  const reading = (async () => { for await (const c of body) chunks.push(String(c)) })()
  await new Promise((resolve) => setTimeout(resolve, 50))
  await logs.note('b3', 'world')
  done = true
  await reading
  t.equal(chunks.join(''), 'cosa-buildd: hello\n==> cosa-buildd: world\n')
})
