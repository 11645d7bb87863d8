import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { LocalStore } from '../../src/artifacts/local-store.js'
import { Publisher } from '../../src/artifacts/publisher.js'
import { SpaceGuard } from '../../src/artifacts/space-guard.js'
import { buildsJsonKey } from '../../src/artifacts/store-layout.js'
import { FileLogStore } from '../../src/logs/file-log-store.js'
import { Housekeeping } from '../../src/builds/housekeeping.js'
import { BuildLifecycle } from '../../src/builds/lifecycle.js'
import { openDatabase } from '../../src/store/open-database.js'
import { silentLogger, tempDir } from '../helpers.js'

// Old builds go, with their logs and idempotency keys; pinned and
// still-published ones stay, as do builds that have not finished.

const DAY = 24 * 3600_000
const request = { force: false, skipPrune: false }
const result = (cosaBuildId: string) => ({ cosaBuildId, arch: 'x86_64', ostreeCommit: 'c', artifacts: [] })

t.test('a pass prunes what is old and not kept', async (t) => {
  const root = await tempDir(t)
  const store = await openDatabase({}, join(root, 'db.sqlite'))
  t.teardown(() => store.close())
  await store.streams.putStream({ name: 's', config: { url: 'file:///x', ref: 'm' }, image: 'i', platforms: [], timeoutSeconds: 1, keep: 10, resources: {}, recipe: [], createdAt: '', updatedAt: '' })
  let clock = Date.parse('2026-01-01T00:00:00Z')
  const now = () => new Date(clock)
  const lifecycle = new BuildLifecycle({ store, now, logger: silentLogger, lease: { owner: 'test', ms: 30_000 }, infrastructureRetries: 0 })
  const logs = new FileLogStore(join(root, 'logs'), 1 << 20)
  const artifacts = new LocalStore(join(root, 'store'))
  const publisher = new Publisher({ store: artifacts, guard: new SpaceGuard({ dataDir: root, store: artifacts, minFreeBytes: 0 }), logger: silentLogger, now })

  // Finished 100 days ago: a failed build, a pinned one, a published one, an unpublished one.
  const finish = async (id: string, cosa?: string, key?: string) => {
    await lifecycle.submit({ id, stream: 's', request, createdAt: now().toISOString() }, key ? { scope: 'c', key, fingerprint: 'f' } : undefined)
    const running = (await lifecycle.claimNext(1))!
    await logs.note(id, 'hello')
    await lifecycle.finish(running, cosa ? { state: 'succeeded', result: result(cosa) } : { state: 'failed', reason: 'exit_code' })
  }
  await finish('failed-old', undefined, 'k1')
  await finish('pinned', '1.0')
  await finish('published', '2.0')
  await finish('gone', '3.0')
  await store.pins.setPin('s', '1.0', true, now().toISOString())
  // A webhook delivery of then, delivered, and one still pending.
  await store.webhooks.insertWebhook({ name: 'h', url: 'https://hooks.example.com/x', events: ['build.finished'], streams: [], enabled: true, createdAt: '', updatedAt: '', secret: 'whsec_AAAA', cursor: 0 })
  const delivery = (n: number) => ({ id: `msg_${n}`, eventSeq: n, type: 'build.finished' as const, buildId: 'gone', body: '{}' })
  await store.webhooks.enqueue('h', 0, 2, [delivery(1), delivery(2)], now().toISOString())
  await store.webhooks.recordAttempt('msg_1', { at: now().toISOString(), statusCode: 204, durationMs: 1 }, { state: 'delivered' })
  await artifacts.putBytes(buildsJsonKey('s'), Buffer.from(JSON.stringify({ 'schema-version': '1.0.0', builds: [{ id: '2.0', arches: ['x86_64'] }], timestamp: '2026-01-01T00:00:00Z' })), 'application/json')
  clock += 60 * DAY
  await finish('recent', undefined, 'k2')
  await lifecycle.submit({ id: 'queued', stream: 's', request, createdAt: now().toISOString() })
  clock += 40 * DAY

  const housekeeping = new Housekeeping({ store, publisher, logs, now, logger: silentLogger, retention: { idempotencyKeyHours: 24, buildDays: 90, logDays: 90 } })
  const [first, again] = await Promise.all([housekeeping.prune(), housekeeping.prune()])
  t.equal(first, again, 'one pass at a time: a second call shares the running one')
  t.same(first, { keys: 2, logs: 2, builds: 2, events: 12, deliveries: 1 }, 'the first four builds\' events (queued, started, finished) are 100 days old')
  const left = (await store.builds.listBuilds({ limit: 10 })).map((b) => b.id).sort()
  t.same(left, ['pinned', 'published', 'queued', 'recent'], 'old unkept builds are gone; pinned, published, recent and unfinished stay')
  t.notOk(existsSync(logs.path('gone')), 'with their logs')
  t.same((await store.webhooks.listDeliveries('h', 10)).map((d) => d.id), ['msg_2'], 'the old delivered delivery went; the pending one stays')
  t.ok(existsSync(logs.path('pinned')), 'a kept build keeps its log')
  const replay = await lifecycle.submit({ id: 'new', stream: 's', request, createdAt: now().toISOString() }, { scope: 'c', key: 'k2', fingerprint: 'x' })
  t.equal(replay.kind, 'created', 'an expired idempotency key is free again')
  t.same(await housekeeping.prune(), { keys: 0, logs: 0, builds: 0, events: 0, deliveries: 0 }, 'nothing more to do')
  t.same((await store.events.eventsAfter(0, { limit: 100 })).map((e) => e.buildId).sort(), ['new', 'queued', 'recent', 'recent', 'recent'],
    'newer events stay')
})
