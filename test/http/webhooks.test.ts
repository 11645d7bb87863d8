import t, { type Test } from 'tap'
import type { CoreOptions } from '../../src/core.js'
import { ensureInertImage, INERT_IMAGE, register, startApp, submit, type TestApp } from '../helpers.js'
import { until } from '../server-process.js'
import { startReceiver } from '../webhooks/receiver.js'

// The admin API of webhooks, and what it makes the dispatcher do, with real
// receivers on 127.0.0.1 (allowed here by webhooks.allowPrivateHosts: the
// refusal without it is tested too). Builds are of a stream whose config
// repository does not exist: each fails in `preparing` without a container,
// which makes build.queued, build.started and build.finished quickly.

const ALLOW_LOCAL = { webhooks: { schemes: ['http'], allowPrivateHosts: true, retrySeconds: [0.2, 0.2, 0.2], timeoutMs: 2000 } }

async function put (h: TestApp, name: string, body: unknown, query = '') {
  return h.app.inject({ method: 'PUT', url: `/v1/webhooks/${name}${query}`, payload: body as object })
}

async function quickBuild (h: TestApp, stream: string) {
  const build = await submit(h, stream)
  return h.waitFor(build.id, ['failed'], 60_000)
}

async function setup (t: Test, core: Partial<CoreOptions> = {}) {
  await ensureInertImage()
  const h = await startApp(t, { ...ALLOW_LOCAL, builds: { defaultImage: INERT_IMAGE, maxConcurrent: 2 }, storage: { minFreeBytes: 0 } }, core)
  for (const s of ['alpha', 'beta']) await register(h, s, { config: { url: `file:///nonexistent/${s}`, ref: 'main' } })
  return h
}

const deliveries = async (h: TestApp, name: string) =>
  (await h.app.inject({ method: 'GET', url: `/v1/webhooks/${name}/deliveries` })).json().deliveries

t.test('the secret is shown once; GETs, list and delete', async (t) => {
  const h = await setup(t)
  const r = await startReceiver(t)
  const created = await put(h, 'ci', { url: r.url, events: ['build.finished'] })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { name: 'ci', url: r.url, events: ['build.finished'], streams: [], enabled: true })
  t.match(created.json().secret, /^whsec_[A-Za-z0-9+/]{43}=$/)
  t.equal(created.headers['cache-control'], 'no-store')
  const got = await h.app.inject({ method: 'GET', url: '/v1/webhooks/ci' })
  t.equal(got.json().secret, undefined, 'a GET never shows the secret')
  const listed = (await h.app.inject({ method: 'GET', url: '/v1/webhooks' })).json().webhooks
  t.same(listed.map((w: { name: string, secret?: string }) => [w.name, w.secret]), [['ci', undefined]])

  const changed = await put(h, 'ci', { url: r.url, events: ['build.queued', 'build.finished'] })
  t.equal(changed.statusCode, 200)
  t.equal(changed.json().secret, undefined, 'a change keeps the secret and does not show it')
  r.setSecret(created.json().secret)
  await quickBuild(h, 'alpha')
  await until('two deliveries', 10_000, async () => r.received.length >= 2)
  t.same(r.rejected, [], 'the first secret still signs')

  const rotated = await put(h, 'ci', { url: r.url, events: ['build.finished'] }, '?rotateSecret=true')
  t.equal(rotated.statusCode, 200)
  t.not(rotated.json().secret, created.json().secret, 'rotateSecret answers a new secret')
  r.setSecret(rotated.json().secret)
  await quickBuild(h, 'alpha')
  await until('a delivery signed with the new secret', 10_000, async () => r.received.length >= 3)
  t.same(r.rejected, [])

  t.equal((await h.app.inject({ method: 'DELETE', url: '/v1/webhooks/ci' })).statusCode, 204)
  const gone = await h.app.inject({ method: 'GET', url: '/v1/webhooks/ci' })
  t.equal(gone.statusCode, 404)
  t.equal(gone.json().code, 'BLD_WEBHOOK_NOT_FOUND')
  t.equal((await h.app.inject({ method: 'DELETE', url: '/v1/webhooks/ci' })).json().code, 'BLD_WEBHOOK_NOT_FOUND')
})

t.test('bad input is a specific 4xx', async (t) => {
  const h = await setup(t)
  const cases: Array<[unknown, number, string]> = [
    [{ url: 'http://127.0.0.1:1/x', events: [] }, 400, 'BLD_INVALID_REQUEST'],
    [{ url: 'http://127.0.0.1:1/x', events: ['build.nope'] }, 400, 'BLD_INVALID_REQUEST'],
    [{ url: 'http://127.0.0.1:1/x', events: ['build.queued', 'build.queued'] }, 400, 'BLD_INVALID_REQUEST'],
    [{ url: 'ftp://example.com/x', events: ['build.queued'] }, 422, 'BLD_WEBHOOK_URL_REFUSED'],
    [{ url: 'file:///etc/passwd', events: ['build.queued'] }, 422, 'BLD_WEBHOOK_URL_REFUSED'],
    [{ url: 'not a url', events: ['build.queued'] }, 422, 'BLD_WEBHOOK_URL_REFUSED'],
    [{ url: 'http://u:p@127.0.0.1/x', events: ['build.queued'] }, 422, 'BLD_WEBHOOK_URL_REFUSED']
  ]
  for (const [body, status, code] of cases) {
    const res = await put(h, 'x', body)
    t.equal(res.statusCode, status, JSON.stringify(body))
    t.equal(res.json().code, code, res.json().message)
  }
  t.equal((await put(h, 'Bad Name', { url: 'http://127.0.0.1/', events: ['build.queued'] })).statusCode, 400)
  const none = await h.app.inject({ method: 'POST', url: '/v1/webhooks/nope/deliveries/msg_x/redeliver' })
  t.equal(none.json().code, 'BLD_WEBHOOK_NOT_FOUND')
  await put(h, 'x', { url: 'http://127.0.0.1:1/x', events: ['build.queued'] })
  const noDelivery = await h.app.inject({ method: 'POST', url: '/v1/webhooks/x/deliveries/msg_x/redeliver' })
  t.equal(noDelivery.statusCode, 404)
  t.equal(noDelivery.json().code, 'BLD_DELIVERY_NOT_FOUND')
})

t.test('private and loopback receivers are refused unless the server allows them', async (t) => {
  const h = await startApp(t, { webhooks: { schemes: ['https', 'http'] } })
  for (const url of ['http://127.0.0.1:8080/hook', 'http://localhost/hook', 'https://10.1.2.3/hook', 'http://169.254.169.254/latest', 'http://[::1]/']) {
    const res = await put(h, 'x', { url, events: ['build.finished'] })
    t.equal(res.statusCode, 422, url)
    t.match(res.json(), { code: 'BLD_WEBHOOK_URL_REFUSED', message: /^url host .* (address|name); this server only fetches from public addresses/ })
  }
  const h2 = await startApp(t, { webhooks: { allowedPrefixes: ['https://hooks.example.com/cosa/'] } })
  const plain = await put(h2, 'x', { url: 'http://hooks.example.com/cosa/1', events: ['build.finished'] })
  t.match(plain.json(), { code: 'BLD_WEBHOOK_URL_REFUSED', message: /scheme http is not allowed: use https/ }, 'https only by default')
  const outside = await put(h2, 'x', { url: 'https://hooks.example.com/other', events: ['build.finished'] })
  t.match(outside.json(), { code: 'BLD_WEBHOOK_URL_REFUSED', message: /not under an allowed/ })
})

t.test('a real receiver sees every event, verified; 500 then 2xx is retried; redeliver sends again', async (t) => {
  const heard: string[] = []
  const h = await setup(t, { onWebhookDelivery: (webhook, result) => heard.push(`${webhook} ${result}`) })
  const r = await startReceiver(t)
  const res = await put(h, 'all', { url: r.url, events: ['build.queued', 'build.started', 'build.phase', 'build.finished'] })
  r.setSecret(res.json().secret)
  r.answer((_r, n) => n === 1 ? 500 : 204)
  const build = await quickBuild(h, 'alpha')
  const done = await until('build.finished', 15_000, async () => r.received.find((x) => x.event.type === 'io.cosa-buildd.build.finished'))
  t.same(r.rejected, [], 'every delivery verifies with standardwebhooks and is a CloudEvent')
  t.match(done.event, { specversion: '1.0', source: '/v1/streams/alpha', subject: build.id, datacontenttype: 'application/json' })
  t.match(done.event.data, { id: build.id, state: 'failed', reason: String })
  const types = [...new Set(r.received.map((x) => x.event.type))]
  t.same(types.slice(0, 2), ['io.cosa-buildd.build.queued', 'io.cosa-buildd.build.started'])
  t.equal(types.at(-1), 'io.cosa-buildd.build.finished')

  const list = await until('every delivery recorded delivered', 10_000, async () => {
    const all = await deliveries(h, 'all')
    return all.every((d: { state: string }) => d.state === 'delivered') && all
  })
  const first = r.received[0]!
  t.equal(r.received.filter((x) => x.id === first.id).length, 2, 'the delivery answered 500 came again, same webhook-id')
  t.equal(list.length, new Set(r.received.map((x) => x.id)).size, 'one delivery per event')
  const retried = list.find((d: { id: string }) => d.id === first.id)
  t.match(retried.attempts, [{ statusCode: 500, durationMs: Number, at: String }, { statusCode: 204 }])
  t.equal(retried.attempts.length, 2)

  const before = r.received.filter((x) => x.id === done.id).length
  const again = await h.app.inject({ method: 'POST', url: `/v1/webhooks/all/deliveries/${done.id}/redeliver` })
  t.equal(again.statusCode, 202)
  t.equal(again.json().state, 'pending')
  await until('the redelivery', 10_000, async () => r.received.filter((x) => x.id === done.id).length > before)
  const resent = await until('the redelivery recorded', 10_000, async () =>
    (await deliveries(h, 'all')).find((d: { id: string, state: string }) => d.id === done.id && d.state === 'delivered'))
  t.equal(resent.attempts.length, 2, 'the first attempt and the redelivery')
  const attempts = (await deliveries(h, 'all')).reduce((n: number, d: { attempts: unknown[] }) => n + d.attempts.length, 0)
  t.equal(heard.length, attempts, 'onWebhookDelivery heard every attempt')
  t.equal(heard[0], 'all retrying', 'the 500')
  t.equal(heard.filter((x) => x === 'all delivered').length, attempts - 1)
  t.same(r.rejected, [])
})

t.test('events and streams filter; a receiver answering 410 disables its webhook', async (t) => {
  const h = await setup(t)
  const a = await startReceiver(t)
  const b = await startReceiver(t)
  a.setSecret((await put(h, 'alpha-finished', { url: a.url, events: ['build.finished'], streams: ['alpha'] })).json().secret)
  b.setSecret((await put(h, 'gone', { url: b.url, events: ['build.queued'] })).json().secret)
  b.answer(() => 410)
  const one = await quickBuild(h, 'alpha')
  const two = await quickBuild(h, 'beta')
  await until('alpha finished', 10_000, async () => a.received.length >= 1)
  const hook = await until('the webhook disabled', 10_000, async () => {
    const w = (await h.app.inject({ method: 'GET', url: '/v1/webhooks/gone' })).json()
    return !w.enabled && w
  })
  t.match(hook.disabledReason, /410/)
  // Give a wrong delivery time to arrive.
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.same(a.received.map((x) => [x.event.type, x.event.subject]), [['io.cosa-buildd.build.finished', one.id]],
    'only build.finished, and only stream alpha')
  t.not(two.id, one.id)
  const latency = a.received[0]!.arrivedAt - Date.parse(a.received[0]!.event.time)
  t.ok(latency < 5000, 'a receiver hears of a finished build at once, not at a poll')
  t.comment(`build.finished reached its receiver ${latency} ms after it was committed`)
  t.equal(b.hits(), 1, 'nothing more was sent to a receiver that said 410')
  const failed = await deliveries(h, 'gone')
  t.match(failed, [{ state: 'failed', attempts: [{ statusCode: 410 }] }])

  b.answer(() => 204)
  const enabled = await put(h, 'gone', { url: b.url, events: ['build.queued'] })
  t.equal(enabled.json().enabled, true, 'a PUT enables it again')
  t.equal(enabled.json().disabledReason, undefined)
  const three = await quickBuild(h, 'beta')
  const after = await until('a delivery after re-enabling', 10_000, async () => b.received.find((x) => x.event.subject === three.id))
  t.equal(after.event.type, 'io.cosa-buildd.build.queued')
  t.equal(b.hits(), 2, 'events while it was disabled are not delivered')
  t.same([...a.rejected, ...b.rejected], [])
})

t.test('the URL policy is checked again before each attempt', async (t) => {
  const h = await setup(t)
  const r = await startReceiver(t)
  t.equal((await put(h, 'local', { url: r.url, events: ['build.queued'] })).statusCode, 201)
  await h.app.close()
  // The same data directory, now without allowPrivateHosts: the registered loopback URL is refused when sent.
  const strict = await startApp(t, {
    dataDir: h.dataDir, webhooks: { ...ALLOW_LOCAL.webhooks, allowPrivateHosts: false }, builds: { defaultImage: INERT_IMAGE }, storage: { minFreeBytes: 0 }
  })
  await quickBuild(strict, 'alpha')
  const [refused] = await until('an attempt', 10_000, async () => {
    const list = await deliveries(strict, 'local')
    return list.length > 0 && list[0].attempts.length > 0 && list
  })
  t.match(refused.attempts[0], { error: /^refused: url host 127\.0\.0\.1 is a loopback address/ })
  t.equal(refused.attempts[0].statusCode, undefined)
  t.equal(refused.state, 'pending', 'retried later: the policy or the address may change')
  t.equal(r.hits(), 0, 'nothing reached the receiver')
})

t.test('with several replicas, the one holding the webhooks duty sends: deliveries wait while another holds it', async (t) => {
  const h = await setup(t)
  const r = await startReceiver(t)
  const leases = h.app.core.store.leases
  // This replica took the duty at start; it lapses, and another takes it.
  await leases.releaseDuty('webhooks', h.app.core.config.replicas.id)
  t.ok(await leases.holdDuty('webhooks', { owner: 'another-replica', ms: 60_000 }), 'another replica holds the duty')
  const created = await put(h, 'ci', { url: r.url, events: ['build.finished'] })
  r.setSecret(created.json().secret)
  await quickBuild(h, 'alpha')
  await until('the delivery to be made', 10_000, async () => (await deliveries(h, 'ci')).length === 1)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(r.hits(), 0, 'made, but not sent by this replica')
  t.match(await deliveries(h, 'ci'), [{ state: 'pending' }])
  await leases.releaseDuty('webhooks', 'another-replica')
  await quickBuild(h, 'beta')
  await until('both deliveries sent once the duty is free', 10_000, async () => r.received.length === 2)
  t.same(r.rejected, [])
})
