import t, { type Test } from 'tap'
import { configRepo, requireDocker } from './helpers.js'
import {
  allEnded, checkBuildsJson, eachTickOnce, leases, sampleContainers, startCluster, startRunning, type ReplicaCluster
} from './replica-cluster.js'
import { api, sleep, tickRecipe, type Server } from './server-process.js'

// Issue #14: PostgreSQL restarted (`pg_ctl restart -m fast`) under two
// replicas with builds running, then stopped for 8 s: every build ends
// `succeeded`, with each log line once, one builds.json entry and one
// container at every observation. While the database is away the API
// answers 503 BLD_DATABASE_UNAVAILABLE with Retry-After, never a 500.

const BUILDS = 4
const TICKS = 20
const LEASE_SECONDS = 3
const OUTAGE_MS = 8000

/** Asks both replicas for a build every 50 ms until stopped: the answers' statuses and codes, and when 200s came again. */
function probe (servers: Server[], id: string) {
  const answers = new Map<string, number>()
  let probing = true
  let lastFailure = 0
  const run = (async () => {
    while (probing) {
      for (const server of servers) {
        const res = await api(server, `/v1/builds/${id}`).catch(() => undefined)
        const key = !res ? 'no answer' : res.status === 200 ? '200' : `${res.status} ${res.json().code} retry-after ${res.headers.get('retry-after')}`
        answers.set(key, (answers.get(key) ?? 0) + 1)
        if (key !== '200') lastFailure = performance.now()
      }
      await sleep(50)
    }
  })()
  return async () => {
    probing = false
    await run
    return { answers, lastFailure }
  }
}

async function oneFinishedEvent (t: Test, cluster: ReplicaCluster, ids: string[]) {
  const { rows } = await cluster.db.query(`SELECT build_id, COUNT(*) AS n FROM events WHERE type = 'build.finished' AND build_id = ANY($1)
    GROUP BY build_id`, [ids])
  t.ok(rows.length === ids.length && rows.every((r: { n: string }) => Number(r.n) === 1), 'one build.finished event per build')
}

t.test('PostgreSQL restarted, then down for a while, under two replicas with running builds', { timeout: 15 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const cluster = await startCluster(t, { maxConcurrent: BUILDS, leaseSeconds: LEASE_SECONDS })
  const servers = [await cluster.start('replica-a'), await cluster.start('replica-b')]
  const sampler = sampleContainers(t, await cluster.owner())
  const repo = await configRepo(t)
  const streams = Array.from({ length: BUILDS }, (_, i) => `s${i}`)
  for (const stream of streams) {
    const reg = await api(servers[0]!, `/v1/streams/${stream}`, { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe: tickRecipe(TICKS) } })
    t.ok(reg.status < 300, `register ${stream}: ${reg.status < 300 ? reg.status : reg.text}`)
  }
  const all: string[] = []

  /** Builds running on both replicas, the database taken away by `cut`; they all end `succeeded`. */
  const round = async (what: string, cut: () => Promise<void>) => {
    const ids = await startRunning(t, servers, streams)
    all.push(...ids)
    const spread = [...(await leases(cluster.db)).values()].map((l) => l.owner).sort().join(', ')
    const stop = probe(servers, ids[0]!)
    const started = performance.now()
    await cut()
    const backAt = performance.now()
    // Answers for a while after the server is back, then stop looking.
    await sleep(3000)
    const { answers, lastFailure } = await stop()
    const failed = [...answers.keys()].filter((k) => k !== '200')
    t.ok(failed.every((k) => /^503 BLD_DATABASE_UNAVAILABLE retry-after \d+$/.test(k)),
      `${what}: while the database was away the API answered 503 BLD_DATABASE_UNAVAILABLE with Retry-After, never a 500 (${
        [...answers].map(([k, n]) => `${k}: ${n}`).join('; ')})`)
    const finals = await allEnded(servers[0]!, ids)
    const endedMs = Math.round(performance.now() - backAt)
    for (const b of finals) t.equal(b.state, 'succeeded', `${what}: build ${b.id}: ${b.message ?? 'succeeded'}`)
    await checkBuildsJson(t, cluster, finals)
    await eachTickOnce(t, servers[0]!, ids, TICKS, what)
    const takeovers = servers.map((s) => [...s.output().matchAll(/took over a build whose lease expired/g)].length)
    t.comment(`${what}: leases ${spread}; the database was away ${Math.round(backAt - started)} ms; the API's last non-200 answer came ` +
      `${lastFailure ? Math.round(lastFailure - started) : 0} ms after it went; all builds ended ${endedMs} ms after it was back; ` +
      `takeovers so far by replica: ${takeovers.join(', ')}`)
  }

  await round('pg_ctl restart -m fast', () => cluster.pg.restart())
  await round(`a ${OUTAGE_MS / 1000} s outage`, () => cluster.pg.outage(OUTAGE_MS))

  await oneFinishedEvent(t, cluster, all)
  const maxPerBuild = await sampler.stop()
  for (const id of all) t.equal(maxPerBuild.get(id), 1, `build ${id}: one container at every observation`)
})
