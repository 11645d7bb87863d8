import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { configRepo, requireDocker, tempDir } from '../helpers.js'
import { api, startServer, until } from '../server-process.js'
import { startReceiver } from './receiver.js'

// A real build on the real server process, its webhook receiver answering
// 500, then the process killed (SIGKILL) with deliveries pending: after a
// restart on the same data directory every event of the build arrives,
// verified, each delivery keeping its webhook-id across the restart.

const EVERY = ['build.queued', 'build.started', 'build.phase', 'build.cancel_requested', 'build.requeued', 'build.finished']

t.test('deliveries pending at a SIGKILL are delivered after the restart', async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = await tempDir(t, 'cosa-buildd-data-')
  const configFile = join(await tempDir(t), 'config.json')
  // Loopback receivers need allowPrivateHosts (its refusal: test/http/webhooks.test.ts); retries every second or so.
  await writeFile(configFile, JSON.stringify({ webhooks: { schemes: ['http'], allowPrivateHosts: true, retrySeconds: Array(20).fill(1) } }))
  const env = { COSA_BUILDD_CONFIG: configFile }
  const receiver = await startReceiver(t)
  receiver.answer(() => 500)
  const repo = await configRepo(t)

  let server = await startServer(t, dataDir, 1, { env })
  t.equal((await api(server, '/v1/streams/minimal', { method: 'PUT', body: { config: { url: repo.url, ref: 'main' } } })).status, 201)
  const hook = await api(server, '/v1/webhooks/ci', { method: 'PUT', body: { url: receiver.url, events: EVERY } })
  t.equal(hook.status, 201)
  receiver.setSecret(hook.json().secret)
  const build = (await api(server, '/v1/streams/minimal/builds', { method: 'POST', body: {} })).json()
  const done = await until('the build to finish', 300_000, async () => {
    const b = (await api(server, `/v1/builds/${build.id}`)).json()
    return ['succeeded', 'failed'].includes(b.state) && b
  })
  t.equal(done.state, 'succeeded', done.message ?? '')
  await until('an attempt at build.finished', 30_000, async () => receiver.received.some((r) => r.event.type.endsWith('build.finished')))
  const before = await api(server, '/v1/webhooks/ci/deliveries?limit=500')
  const pending = before.json().deliveries
  t.ok(pending.every((d: { state: string }) => d.state === 'pending'), 'every delivery is pending: the receiver answered 500')

  server.child.kill('SIGKILL')
  await server.exited
  receiver.answer(() => 204)
  server = await startServer(t, dataDir, 1, { env })

  const after = await until('every delivery delivered', 60_000, async () => {
    const list = (await api(server, '/v1/webhooks/ci/deliveries?limit=500')).json().deliveries
    return list.length > 0 && list.every((d: { state: string }) => d.state === 'delivered') && list
  })
  t.same(receiver.rejected, [], 'every request verified with standardwebhooks and was a CloudEvent')
  t.same(after.map((d: { id: string }) => d.id).sort(), pending.map((d: { id: string }) => d.id).sort(),
    'the same deliveries: none lost, none doubled')
  const answered = new Map(receiver.received.map((r) => [r.id, r]))
  for (const d of after) t.ok(answered.has(d.id), `${d.type} #${d.eventSeq} arrived`)
  const types = after.toReversed().map((d: { type: string }) => d.type)
  t.equal(types[0], 'build.queued')
  t.equal(types[1], 'build.started')
  t.ok(types.includes('build.phase'), 'phases too')
  t.equal(types.at(-1), 'build.finished')
  const finished = receiver.received.filter((r) => r.event.type === 'io.cosa-buildd.build.finished').at(-1)!
  t.match(finished.event.data, { id: build.id, state: 'succeeded', result: { cosaBuildId: done.result.cosaBuildId } })
  t.ok(after.every((d: { attempts: Array<{ statusCode?: number }> }) => d.attempts.at(-1)?.statusCode === 204 &&
    d.attempts.some((a) => a.statusCode === 500)), 'each answered 500 before the kill and 204 after')
  t.comment(`${after.length} deliveries, ${receiver.hits()} requests`)
})
