import { execa } from 'execa'
import t from 'tap'
import { configRepo, requireDocker } from './helpers.js'
import { startCluster } from './replica-cluster.js'
import { api, sleep, tickRecipe, until, type Server } from './server-process.js'

// Issue #14: requests spread over two replicas (separate processes) on one
// PostgreSQL. 4,000 submits with 1,000 idempotency keys, each key sent four
// times at once, twice to each replica: exactly 1,000 builds. They queue
// behind a long build of their stream, so no other container starts. Then a
// cancel sent to the replica that does not supervise a running build stops
// its container at once: the cancel is NOTIFYed (cosa_buildd_cancel) to its
// supervisor, which would otherwise see it only at its next lease renewal
// (every 30 s here).

const SUBMITS = 4000
const KEYS = 1000
const IN_FLIGHT = 64
/** Renewals every 30 s: a cancel seen only at a renewal takes 15 s on average. */
const LEASE_SECONDS = 90
/** The hint's answer, and a bound a renewal would miss most of the time. */
const CANCEL_WITHIN_MS = 5000

async function submit (server: Server, stream: string, key?: string) {
  const res = await fetch(`${server.url}/v1/streams/${stream}/builds`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) }
  })
  const body = await res.json() as { id?: string }
  return { status: res.status, id: body.id, replayed: res.headers.get('idempotent-replayed') === 'true' }
}

t.test('two replicas: idempotency across them, and a cancel through the replica that does not supervise', { timeout: 10 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const cluster = await startCluster(t, {
    maxConcurrent: 2,
    leaseSeconds: LEASE_SECONDS,
    config: { builds: { reconcileIntervalMs: 1000 }, http: { submitsPerMinute: 0 } }
  })
  const a = await cluster.start('replica-a')
  const b = await cluster.start('replica-b')
  const repo = await configRepo(t)
  for (const stream of ['load', 'cancel']) {
    const reg = await api(a, `/v1/streams/${stream}`, { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe: tickRecipe(600) } })
    t.ok(reg.status < 300, `register ${stream}: ${reg.status < 300 ? reg.status : reg.text}`)
  }
  const running = async (id: string) => {
    const build = (await api(a, `/v1/builds/${id}`)).json()
    if (build.state !== 'running') throw new Error(`build ${id} is ${build.state}: ${build.message ?? ''}`)
    return build.containerId && /^tick 1$/m.test((await api(a, `/v1/builds/${id}/log`)).text) && build as { containerId: string }
  }
  const blocker = await submit(a, 'load')
  const victim = await submit(b, 'cancel')
  await until('both builds to run', 5 * 60_000, async () => await running(blocker.id!) && running(victim.id!))

  await t.test('4,000 submits over both replicas with 1,000 idempotency keys make 1,000 builds', async (t) => {
    const answers: Array<Awaited<ReturnType<typeof submit>> & { key: string }> = []
    let next = 0
    const started = performance.now()
    // Each key's four submits are consecutive, so they are in flight together, two on each replica.
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      for (let i = next++; i < SUBMITS; i = next++) {
        const key = `key-${Math.floor(i / 4)}`
        answers.push({ key, ...await submit(i % 2 ? b : a, 'load', key) })
      }
    }))
    const seconds = (performance.now() - started) / 1000
    const statuses = new Map<number, number>()
    for (const r of answers) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1)
    t.same(Object.fromEntries(statuses), { 202: SUBMITS }, 'every submit answered 202')
    const byKey = new Map<string, Set<string | undefined>>()
    for (const r of answers) byKey.set(r.key, (byKey.get(r.key) ?? new Set()).add(r.id))
    t.equal(byKey.size, KEYS, 'every key answered')
    t.ok([...byKey.values()].every((ids) => ids.size === 1), 'each key\'s four answers name one build')
    t.equal(answers.filter((r) => !r.replayed).length, KEYS, 'one answer per key made the build; the others replayed it')
    const { rows: [count] } = await cluster.db.query("SELECT COUNT(*) AS n FROM builds WHERE stream = 'load' AND id <> $1", [blocker.id])
    t.equal(Number(count.n), KEYS, `exactly ${KEYS} builds in the database`)
    t.comment(`${SUBMITS} submits (${IN_FLIGHT} in flight, alternating replicas) with ${KEYS} keys: ${seconds.toFixed(1)} s, ` +
      `${Math.round(SUBMITS / seconds)} submits/s`)
  })

  await t.test('a cancel sent to the replica that does not supervise the build stops it at once', async (t) => {
    const { rows: [lease] } = await cluster.db.query('SELECT lease_owner FROM builds WHERE id = $1', [victim.id])
    const other = lease.lease_owner === 'replica-a' ? b : a
    const { containerId } = (await running(victim.id!))!
    const asked = performance.now()
    const res = await api(other, `/v1/builds/${victim.id}/cancel`, { method: 'POST' })
    t.ok(res.status < 300, `cancel through the other replica: ${res.status}`)
    for (;;) {
      const { stdout } = await execa('docker', ['inspect', '-f', '{{.State.Running}}', containerId], { reject: false })
      if (stdout.trim() !== 'true') break
      if (performance.now() - asked > 60_000) throw new Error('the container still runs 60 s after the cancel')
      await sleep(20)
    }
    const stoppedMs = Math.round(performance.now() - asked)
    const final = await until('the build to end', 60_000, async () => {
      const build = (await api(other, `/v1/builds/${victim.id}`)).json()
      return build.state !== 'running' && build
    })
    const endedMs = Math.round(performance.now() - asked)
    t.equal(final.state, 'cancelled', 'the build ended cancelled')
    t.comment(`cancel via ${lease.lease_owner === 'replica-a' ? 'replica-b' : 'replica-a'} of a build ${lease.lease_owner} supervises: ` +
      `container stopped after ${stoppedMs} ms, build cancelled after ${endedMs} ms (renewals every ${LEASE_SECONDS / 3} s)`)
    t.ok(stoppedMs < CANCEL_WITHIN_MS, `the container stopped within ${CANCEL_WITHIN_MS} ms (${stoppedMs} ms), not at the next renewal`)
  })
})
