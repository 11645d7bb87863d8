import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { BuildLogs } from '../../src/builds/build-logs.js'
import { tempDir } from '../helpers.js'

t.test('a resume cuts the file back to the checkpoint and continues after its marks', async (t) => {
  const logs = new BuildLogs(await tempDir(t), 1024 * 1024)
  await logs.note('b1', 'starting')
  t.equal(await logs.resume('b1'), undefined, 'nothing to resume before the container log was copied')
  const marks = { stdout: { ts: '2026-01-01T00:00:02.000000001Z', n: 1 } }
  const writer = await logs.open('b1', undefined)
  await writer.write('one\ntwo\n')
  await writer.checkpoint(marks)
  await logs.note('b1', 'through the writer')
  await writer.close()
  // A crash after the checkpoint: a line reached the file, not the checkpoint.
  await writeFile(logs.path('b1'), (await readFile(logs.path('b1'), 'utf8')) + 'half a li')
  t.same(await logs.resume('b1'), marks)
  t.equal(await readFile(logs.path('b1'), 'utf8'), '==> cosa-buildd: starting\none\ntwo\n',
    'what came after the checkpoint is dropped: the next copy reads it again')
  await logs.note('b1', 'restarted')
  t.same(await logs.resume('b1'), marks, 'a note moves the checkpoint past itself')
  t.match(await readFile(logs.path('b1'), 'utf8'), /two\n==> cosa-buildd: restarted\n$/)
})

t.test('a checkpoint of the older format resumes after its timestamp in both streams', async (t) => {
  const dir = await tempDir(t)
  const logs = new BuildLogs(dir, 1024)
  await writeFile(logs.path('b0'), 'old\n')
  await writeFile(join(dir, 'b0.cursor'), JSON.stringify({ ts: '2026-01-01T00:00:02.5Z', bytes: 4 }))
  const all = { ts: '2026-01-01T00:00:02.5Z', n: Number.MAX_SAFE_INTEGER }
  t.same(await logs.resume('b0'), { stdout: all, stderr: all })
})

t.test('the log is bounded and says so; service notes still get in', async (t) => {
  const logs = new BuildLogs(await tempDir(t), 40)
  const writer = await logs.open('b2', undefined)
  for (let i = 0; i < 20; i++) await writer.write(`line ${i}\n`)
  await logs.note('b2', 'build failed')
  await writer.close()
  const text = await readFile(logs.path('b2'), 'utf8')
  t.ok(Buffer.byteLength(text) < 40 + 120, `bounded: ${Buffer.byteLength(text)} bytes`)
  t.match(text, /log limit reached/)
  t.notMatch(text, /line 19/)
  t.match(text, /build failed\n$/)
  const again = await logs.open('b2', undefined)
  await again.write('more\n')
  await again.close()
  t.notMatch(await readFile(logs.path('b2'), 'utf8'), /more/, 'a full log stays full after a restart')
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
