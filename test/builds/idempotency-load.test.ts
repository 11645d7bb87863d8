import autocannon from 'autocannon'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { configRepo, register, startApp, vanishingImage } from '../helpers.js'

// R1: duplicate submissions under load. 4000 POSTs over 50 connections cycle
// 1000 Idempotency-Keys: exactly 1000 builds are admitted, every other answer
// replays the build its key made, and nothing fails. The stream's image is
// gone once it is registered, so the builds fail fast in the background and
// start no container.

const N = 4000
const KEYS = 1000
const CONNECTIONS = 50
const STREAM = 'dup'

interface Seen { key: string, status: number, replayed: boolean, id: string | undefined }

t.test('R1: 4000 submits cycling 1000 idempotency keys admit exactly 1000 builds', async (t) => {
  // The submit rate limit (http.submitsPerMinute) is off: this measures admission, not the limiter.
  const h = await startApp(t, { builds: { maxConcurrent: 1 }, http: { submitsPerMinute: 0 } })
  const repo = await configRepo(t)
  const image = await vanishingImage(t, 'dup')
  await register(h, STREAM, { config: { url: repo.url, ref: 'main' }, image: image.tag })
  await image.vanish()
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`
  const url = `${base}/v1/streams/${STREAM}/builds`

  let n = 0
  const seen: Seen[] = []
  const result = await autocannon({
    url,
    connections: CONNECTIONS,
    amount: N,
    timeout: 120,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
    requests: [{
      setupRequest: (req, context) => {
        const key = `load-key-${n++ % KEYS}`
        const ctx = context as { key?: string }
        ctx.key = key
        return { ...req, headers: { ...req.headers, 'idempotency-key': key } }
      },
      onResponse: (status, body, context, headers) => {
        let id: string | undefined
        try { id = JSON.parse(body).id } catch {}
        const replayed = (headers as Record<string, string | string[]> | undefined)?.['idempotent-replayed'] === 'true'
        seen.push({ key: (context as { key: string }).key, status, replayed, id })
      }
    }]
  })
  t.comment(`${N} POSTs, ${CONNECTIONS} connections, ${KEYS} keys, same process (2 cores): ` +
    `${result.requests.average} req/s average, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, ` +
    `max ${result.latency.max} ms; total ${result.requests.total}, non2xx ${result.non2xx}, 5xx ${result['5xx']}, ` +
    `errors ${result.errors}, timeouts ${result.timeouts}`)

  t.equal(result.requests.total, N, `${N} requests answered`)
  t.equal(seen.length, N, 'every answer was seen')
  t.equal(result.errors, 0, 'no connection errors')
  t.equal(result.timeouts, 0, 'no timeouts')
  t.equal(result['5xx'], 0, 'no 5xx')
  t.equal(result.non2xx, 0, 'no non-2xx')
  const statuses: Record<number, number> = {}
  for (const s of seen) statuses[s.status] = (statuses[s.status] ?? 0) + 1
  t.same(statuses, { 202: N }, 'every answer is 202')

  const created = seen.filter((s) => s.status === 202 && !s.replayed)
  const replays = seen.filter((s) => s.status === 202 && s.replayed)
  t.equal(created.length, KEYS, `${KEYS} created`)
  t.equal(replays.length, N - KEYS, `${N - KEYS} replays`)
  const byKey = new Map<string, Seen[]>()
  for (const s of seen) byKey.set(s.key, [...(byKey.get(s.key) ?? []), s])
  t.equal(byKey.size, KEYS, 'every key was used')
  let wrongFirst = 0
  let wrongId = 0
  for (const answers of byKey.values()) {
    const firsts = answers.filter((a) => !a.replayed)
    if (firsts.length !== 1) wrongFirst++
    const id = firsts[0]?.id
    if (!id || answers.some((a) => a.id !== id)) wrongId++
  }
  t.equal(wrongFirst, 0, 'each key was created exactly once')
  t.equal(wrongId, 0, 'each replay carries the id its key was first answered with')
  t.equal(new Set(created.map((c) => c.id)).size, KEYS, 'the created builds are distinct')

  // The builds that exist, through the API, page by page.
  const ids = new Set<string>()
  let cursor: string | undefined
  for (let page = 0; page < 100; page++) {
    const res = await h.app.inject({ url: `/v1/builds?stream=${STREAM}&limit=500${cursor ? `&cursor=${cursor}` : ''}` })
    t.equal(res.statusCode, 200, `list page ${page + 1}`)
    const body = res.json()
    for (const b of body.builds) ids.add(b.id)
    cursor = body.nextCursor
    if (!cursor) break
  }
  t.equal(ids.size, KEYS, `exactly ${KEYS} builds exist`)
  t.same([...ids].sort(), created.map((c) => c.id!).sort(), 'and they are the created ones')

  // The same key with another body is refused.
  const other = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'load-key-0' },
    body: JSON.stringify({ force: true })
  })
  t.equal(other.status, 422, 'the same key with another body: 422')
  await other.arrayBuffer()
  const same = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'load-key-0' },
    body: '{}'
  })
  t.equal(same.status, 202, 'the same key with the same body still replays')
  t.equal(same.headers.get('idempotent-replayed'), 'true')
  t.equal(((await same.json()) as { id: string }).id, byKey.get('load-key-0')!.find((a) => !a.replayed)!.id)

  // The builds fail fast: the oldest few have ended without a container.
  for (const id of created.map((c) => c.id!).sort().slice(0, 5)) {
    const done = await h.waitFor(id, ['failed', 'succeeded', 'unchanged', 'cancelled'], 120_000)
    t.equal(done.reason, 'image_unavailable', `${id}: ${done.message}`)
    t.notOk(done.containerId, 'no container was created')
  }
})
