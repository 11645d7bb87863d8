import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { FileLogStore } from '../../src/logs/file-log-store.js'
import { tempDir } from '../helpers.js'
import { logStoreContract } from './log-store-contract.js'

t.test('a line half written to the file before a crash is cut off at the checkpoint', async (t) => {
  const logs = new FileLogStore(await tempDir(t), 1024 * 1024)
  const marks = { stdout: { ts: '2026-01-01T00:00:02.000000001Z', n: 1 } }
  const writer = await logs.open('b1', undefined)
  await writer.write('one\ntwo\n')
  await writer.checkpoint(marks)
  await writer.close()
  await writeFile(logs.path('b1'), (await readFile(logs.path('b1'), 'utf8')) + 'half a li')
  t.same(await logs.resume('b1'), marks)
  t.equal(await readFile(logs.path('b1'), 'utf8'), 'one\ntwo\n')
})

t.test('a checkpoint of the older format resumes after its timestamp in both streams', async (t) => {
  const dir = await tempDir(t)
  const logs = new FileLogStore(dir, 1024)
  await writeFile(logs.path('b0'), 'old\n')
  await writeFile(join(dir, 'b0.cursor'), JSON.stringify({ ts: '2026-01-01T00:00:02.5Z', bytes: 4 }))
  const all = { ts: '2026-01-01T00:00:02.5Z', n: Number.MAX_SAFE_INTEGER }
  t.same(await logs.resume('b0'), { stdout: all, stderr: all })
})

logStoreContract(t, async (t, maxBytes) => ({ store: new FileLogStore(await tempDir(t), maxBytes), settle: async () => {} }))
