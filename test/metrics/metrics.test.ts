import { execa } from 'execa'
import { createServer } from 'node:http'
import { join } from 'node:path'
import t, { type Test as Tap } from 'tap'
import { buildOnce, configRepo, ensureInertImage, freePort, INERT_IMAGE, register, requireDocker, startApp, submit, tempDir, type TestApp } from '../helpers.js'
import { until } from '../server-process.js'

// The metrics after a scripted set of real builds, checked by Prometheus' own
// promtool, and the gauges right after a restart.

const READ = 'metrics-read-token-0123456789'
const ADMIN = 'metrics-admin-token-0123456789'
const admin = { authorization: `Bearer ${ADMIN}` }


/** `name{labels} value` lines of the exposition, as a map. */
function samples (text: string) {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

async function scrape (h: TestApp) {
  const res = await h.app.inject({ url: '/metrics', headers: admin })
  if (res.statusCode !== 200) throw new Error(`GET /metrics: ${res.statusCode} ${res.body}`)
  return res.body
}

async function promtool (t: Tap, text: string) {
  const checked = await execa('promtool', ['check', 'metrics'], { input: text, reject: false, all: true })
  t.equal(checked.exitCode, 0, `promtool check metrics passes: ${checked.all}`)
}

t.test('builds, queues, publishing and HTTP answers, as promtool reads them', async (t) => {
  if (!await requireDocker(t)) return
  await ensureInertImage()
  const dataDir = await tempDir(t, 'cosa-buildd-metrics-')
  const port = await freePort()
  const overrides = {
    dataDir,
    tokens: { read: [READ], submit: [], admin: [ADMIN] },
    metrics: { host: '127.0.0.1', port },
    builds: { maxConcurrent: 1 },
    webhooks: { schemes: ['http'], allowPrivateHosts: true }
  }
  const h = await startApp(t, overrides)
  const inject = h.app.inject.bind(h.app)
  h.app.inject = ((opts: any) => inject({ ...opts, headers: { ...admin, ...opts.headers } })) as typeof h.app.inject
  // A receiver that takes every delivery.
  const receiver = createServer((request, response) => { request.resume(); request.on('end', () => response.writeHead(204).end()) })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { receiver.close() })
  const hook = await h.app.inject({
    method: 'PUT', url: '/v1/webhooks/ci', payload: { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`, events: ['build.finished'] }
  })
  t.equal(hook.statusCode, 201, hook.body)
  const repo = await configRepo(t)
  await register(h, 'mini', { config: { url: repo.url, ref: 'main' } })
  await register(h, 'gone', { config: { url: 'file:///nonexistent', ref: 'main' }, image: INERT_IMAGE })

  const built = await buildOnce(h, 'mini')
  t.equal(built.state, 'succeeded', built.message ?? '')
  t.equal((await buildOnce(h, 'mini')).state, 'unchanged')
  t.equal((await buildOnce(h, 'gone')).reason, 'config_unavailable')
  for (let i = 0; i < 3; i++) await h.app.inject({ url: `/v1/builds/${built.id}` })

  await until('3 webhook deliveries', 30_000, async () =>
    samples(await scrape(h)).get('cosa_buildd_webhook_deliveries_total{webhook="ci",result="delivered"}') === 3)
  const text = await scrape(h)
  await promtool(t, text)
  const m = samples(text)
  t.equal(m.get('cosa_buildd_builds_total{stream="mini",state="succeeded",reason=""}'), 1)
  t.equal(m.get('cosa_buildd_builds_total{stream="mini",state="unchanged",reason=""}'), 1)
  t.equal(m.get('cosa_buildd_builds_total{stream="gone",state="failed",reason="config_unavailable"}'), 1)
  t.equal(m.get('cosa_buildd_build_duration_seconds_count{stream="mini",state="succeeded"}'), 1)
  t.equal(m.get('cosa_buildd_build_duration_seconds_bucket{le="86400",stream="mini",state="succeeded"}'), 1, 'buckets reach 24 h')
  t.equal(m.get('cosa_buildd_build_queue_wait_seconds_count{stream="mini"}'), 2)
  t.equal(m.get('cosa_buildd_publish_duration_seconds_count'), 1, 'one build was stored (unchanged stores nothing)')
  t.ok(m.get('cosa_buildd_publish_bytes_total')! > 1_000_000, `published bytes counted: ${m.get('cosa_buildd_publish_bytes_total')}`)
  t.equal(m.get('cosa_buildd_engine_up{engine="local"}'), 1)
  t.equal(m.get('cosa_buildd_events_outbox_lag_seconds'), 0, 'no delivery waits')
  t.equal(m.get('cosa_buildd_builds_queued{stream="mini"}'), 0, 'a stream with nothing queued reads 0')
  t.ok(m.get('cosa_buildd_http_request_duration_seconds_count{method="GET",route="/v1/builds/:id",status="200"}')! >= 3,
    'answers are counted by route template')
  t.notOk([...m.keys()].some((k) => k.includes(built.id)), 'no build id is a label')
  t.ok(m.has('process_cpu_user_seconds_total') && m.has('nodejs_heap_size_used_bytes'), 'Node.js process metrics')

  // A token is needed on the API; the metrics listener of its own needs none.
  t.equal((await inject({ url: '/metrics' })).statusCode, 401)
  const alone = await fetch(`http://127.0.0.1:${port}/metrics`)
  t.equal(alone.status, 200)
  t.match(alone.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  t.match(await alone.text(), /cosa_buildd_builds_total\{stream="mini",state="succeeded",reason=""\} 1/)
  t.equal((await fetch(`http://127.0.0.1:${port}/v1/streams`)).status, 404, 'it serves metrics alone')
})

t.test('queue gauges are right after a restart', async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = await tempDir(t, 'cosa-buildd-metrics-restart-')
  const repo = await configRepo(t)
  const first = await startApp(t, { dataDir })
  await register(first, 'mini', { config: { url: repo.url, ref: 'main' } })
  await first.app.close()
  // With no engine, builds wait queued; they are still there for the next process.
  const noEngine = { dataDir, docker: { socketPath: join(dataDir, 'no-engine.sock') } }
  const second = await startApp(t, noEngine)
  await submit(second, 'mini')
  await submit(second, 'mini', { force: true })
  await second.app.close()

  const again = await startApp(t, noEngine)
  const m = samples(await scrape(again))
  t.equal(m.get('cosa_buildd_builds_queued{stream="mini"}'), 2, 'both queued builds, read from the store')
  t.equal(m.get('cosa_buildd_builds_running{stream="mini"}'), 0)
  t.equal(m.get('cosa_buildd_engine_up{engine="local"}'), 0, 'the engine is down')
})
