import t from 'tap'
import { configRepo, requireDocker } from './helpers.js'
import {
  allEnded, checkBuildsJson, containersByBuild, eachTickOnce, leases as leasesIn, sampleContainers, startCluster, startRunning
} from './replica-cluster.js'
import { api, sleep, tickRecipe, until } from './server-process.js'

// Issue #14 §2: two replicas of the service (separate processes) on one
// PostgreSQL and one S3 (s3rver), sharing the Docker engine and one data
// directory (the workdirs are still local paths). Builds submitted to either
// run once. The replica supervising five running builds is SIGKILLed: the other
// takes them over when their leases expire and they end `succeeded`, one
// container each, one builds.json entry each, each log line once. Then a
// replica is SIGSTOPped past its leases and resumed: it writes nothing more
// for the builds it lost.

const BUILDS = 5
const TICKS = 20
const LEASE_SECONDS = 3

t.test('two replicas: one run per build, takeover after SIGKILL, a paused replica fenced out', { timeout: 15 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const cluster = await startCluster(t, { maxConcurrent: BUILDS, leaseSeconds: LEASE_SECONDS })
  const { db, replicas, start } = cluster
  await start('replica-a')
  const owner = await cluster.owner()
  // At most one container per build, at every observation of the whole test.
  const sampler = sampleContainers(t, owner)

  const repo = await configRepo(t)
  const recipe = tickRecipe(TICKS)
  for (let i = 0; i < BUILDS; i++) {
    const reg = await api(replicas['replica-a']!, `/v1/streams/s${i}`, { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe } })
    t.ok(reg.status < 300, `register s${i} on one replica: ${reg.status < 300 ? reg.status : reg.text}`)
  }
  const leases = () => leasesIn(db)
  const streams = Array.from({ length: BUILDS }, (_, i) => `s${i}`)
  const round = () => startRunning(t, [replicas['replica-a']!, replicas['replica-b']!], streams)
  /** The replica that supervises most of `ids`, and the builds it supervises. */
  const busiest = async (ids: string[]) => {
    const held = await leases()
    const byOwner = new Map<string, string[]>()
    for (const id of ids) byOwner.set(held.get(id)!.owner, [...(byOwner.get(held.get(id)!.owner) ?? []), id])
    const [victim, builds] = [...byOwner].sort((x, y) => y[1].length - x[1].length)[0]!
    return { victim, builds, held, spread: [...byOwner].map(([o, b]) => `${o}: ${b.length}`).join(', ') }
  }
  // 1. Replica a supervises all five running builds; b starts; a is SIGKILLed.
  const first = await startRunning(t, [replicas['replica-a']!], streams)
  await start('replica-b')
  const kill = await busiest(first)
  t.comment(`round 1 leases: ${kill.spread}`)
  t.equal(kill.builds.length, BUILDS, `the killed replica supervises all ${BUILDS} running builds`)
  const survivor = kill.victim === 'replica-a' ? 'replica-b' : 'replica-a'
  const killedAt = Date.now()
  replicas[kill.victim]!.child.kill('SIGKILL')
  await replicas[kill.victim]!.exited
  const adopted = await until('the survivor to take over every build of the killed replica', 60_000, async () => {
    const held = await leases()
    return kill.builds.every((id) => held.get(id)?.owner === survivor && held.get(id)!.token > kill.held.get(id)!.token) && held
  })
  const takeoverMs = Date.now() - killedAt
  t.ok(adopted, `${kill.builds.length} builds taken over by ${survivor} with higher tokens`)
  const finals1 = await allEnded(replicas[survivor]!, first)
  t.comment(`takeover: all ${kill.builds.length} builds of the killed replica held by ${survivor} ${takeoverMs} ms after SIGKILL ` +
    `(lease ${LEASE_SECONDS} s, sweep 1 s)`)
  for (const b of finals1) t.equal(b.state, 'succeeded', `build ${b.id}: ${b.message ?? 'succeeded'}`)
  t.match(replicas[survivor]!.output(), /took over a build whose lease expired/, 'the survivor logged its takeovers')
  await checkBuildsJson(t, cluster, finals1)
  await eachTickOnce(t, replicas[survivor]!, first, TICKS, 'across the kill')

  // 2. The killed replica comes back; builds submitted to either replica run once; the busiest one is paused past its leases.
  await start(kill.victim)
  const second = await round()
  const pause = await busiest(second)
  t.comment(`round 2 leases: ${pause.spread}`)
  const other = pause.victim === 'replica-a' ? 'replica-b' : 'replica-a'
  const paused = replicas[pause.victim]!
  const outputBefore = paused.output().length
  paused.child.kill('SIGSTOP')
  await until('the other replica to take over the paused one\'s builds', 60_000, async () => {
    const held = await leases()
    return pause.builds.every((id) => held.get(id) === undefined || held.get(id)!.owner === other)
  })
  await sleep(2000)
  paused.child.kill('SIGCONT')
  const finals2 = await allEnded(replicas[other]!, second)
  for (const b of finals2) t.equal(b.state, 'succeeded', `build ${b.id}: ${b.message ?? 'succeeded'}`)
  await checkBuildsJson(t, cluster, finals2)
  await eachTickOnce(t, replicas[other]!, second, TICKS, 'across the pause')
  await sleep(LEASE_SECONDS * 1000)
  const after = paused.output().slice(outputBefore)
  const gaveUp = [...after.matchAll(/lease is lost|not renewed in time/g)].length
  t.comment(`the resumed replica gave up ${gaveUp} leases (paused with ${pause.builds.length})`)
  t.ok(gaveUp >= pause.builds.length, 'the resumed replica noticed, for each build it had, that it lost the lease')
  for (const id of pause.builds) {
    const finished = after.split('\n').filter((l) => l.includes(id) && /"msg":"build finished"/.test(l))
    t.same(finished, [], `build ${id}: the resumed replica wrote no final state`)
  }
  const events = (await db.query(`SELECT build_id, COUNT(*) AS n FROM events WHERE type = 'build.finished' AND build_id = ANY($1) GROUP BY build_id`,
    [[...first, ...second]])).rows
  t.ok(events.every((r: { n: string }) => Number(r.n) === 1) && events.length === BUILDS * 2, 'one build.finished event per build')

  const maxPerBuild = await sampler.stop()
  for (const id of [...first, ...second]) t.equal(maxPerBuild.get(id), 1, `build ${id}: one container at every observation`)
  const left = await until('no container left', 30_000, async () => (await containersByBuild(owner)).size === 0).catch(() => false)
  t.ok(left, 'no container left once every build has ended')
})
