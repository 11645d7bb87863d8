import { GetObjectCommand } from '@aws-sdk/client-s3'
import t from 'tap'
import { configRepo, requireDocker } from './helpers.js'
import { containersByBuild, startCluster } from './replica-cluster.js'
import { api, sleep, tickRecipe, until, type Server } from './server-process.js'

// Issue #14 §2: two replicas of the service (separate processes) on one
// PostgreSQL and one S3 (s3rver), sharing the Docker engine and one data
// directory (the workdirs are still local paths). Builds submitted to either
// run once. The replica supervising running builds is SIGKILLed: the other
// takes them over when their leases expire and they end `succeeded`, one
// container each, one builds.json entry each, each log line once. Then a
// replica is SIGSTOPped past its leases and resumed: it writes nothing more
// for the builds it lost.

const BUILDS = 4
const TICKS = 20
const LEASE_SECONDS = 3
const TERMINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']

t.test('two replicas: one run per build, takeover after SIGKILL, a paused replica fenced out', { timeout: 15 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const { db, raw, s3, replicas, start, owner: ownerOf } = await startCluster(t, { maxConcurrent: BUILDS, leaseSeconds: LEASE_SECONDS })
  await start('replica-a')
  await start('replica-b')
  const owner = await ownerOf()

  // At most one container per build, at every observation of the whole test.
  const maxPerBuild = new Map<string, number>()
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      try {
        for (const [build, n] of await containersByBuild(owner)) maxPerBuild.set(build, Math.max(maxPerBuild.get(build) ?? 0, n))
      } catch {}
      await sleep(500)
    }
  })()
  t.teardown(async () => { sampling = false; await sampler })

  const repo = await configRepo(t)
  const recipe = tickRecipe(TICKS)
  for (let i = 0; i < BUILDS; i++) {
    const reg = await api(replicas['replica-a']!, `/v1/streams/s${i}`, { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe } })
    t.ok(reg.status < 300, `register s${i} on one replica: ${reg.status < 300 ? reg.status : reg.text}`)
  }
  const leases = async () => new Map((await db.query("SELECT id, lease_owner, lease_token FROM builds WHERE state = 'running'")).rows
    .map((r: { id: string, lease_owner: string, lease_token: number }) => [r.id, { owner: r.lease_owner, token: Number(r.lease_token) }]))
  const states = async (server: Server, ids: string[]) => Promise.all(ids.map(async (id) => (await api(server, `/v1/builds/${id}`)).json()))

  /** Submits one build per stream, alternating between the replicas; waits until each runs and has logged "tick 2". */
  const round = async (server: () => Server[]) => {
    const ids: string[] = []
    for (let i = 0; i < BUILDS; i++) {
      const via = server()[i % server().length]!
      const sub = await api(via, `/v1/streams/s${i}/builds`, { method: 'POST', body: { force: true } })
      t.equal(sub.status, 202, `submit s${i}`)
      ids.push(sub.json().id)
    }
    await until('every build to run and log "tick 2"', 5 * 60_000, async () => {
      for (const b of await states(server()[0]!, ids)) {
        if (TERMINAL.includes(b.state)) throw new Error(`build ${b.id} ended early: ${b.state} ${b.message ?? ''}`)
        if (!b.containerId || !/^tick 2$/m.test((await api(server()[0]!, `/v1/builds/${b.id}/log`)).text)) return false
      }
      return true
    })
    return ids
  }
  /** The replica that supervises most of `ids`, and the builds it supervises. */
  const busiest = async (ids: string[]) => {
    const held = await leases()
    const byOwner = new Map<string, string[]>()
    for (const id of ids) byOwner.set(held.get(id)!.owner, [...(byOwner.get(held.get(id)!.owner) ?? []), id])
    const [victim, builds] = [...byOwner].sort((x, y) => y[1].length - x[1].length)[0]!
    return { victim, builds, held, spread: [...byOwner].map(([o, b]) => `${o}: ${b.length}`).join(', ') }
  }
  const finish = async (server: Server, ids: string[]) => until('every build to end', 8 * 60_000, async () => {
    const all = await states(server, ids)
    return all.every((b) => TERMINAL.includes(b.state)) && all
  })
  const checkBuildsJson = async (finals: Array<{ id: string, stream: string, result?: { cosaBuildId: string } }>) => {
    for (const b of finals) {
      const body = await (await raw.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${b.stream}/builds/builds.json` }))).Body!.transformToString()
      const listed = (JSON.parse(body).builds as Array<{ id: string }>).filter((e) => e.id === b.result?.cosaBuildId)
      t.equal(listed.length, 1, `build ${b.id}: exactly one builds.json entry (${b.result?.cosaBuildId})`)
    }
  }

  // 1. Builds submitted to either replica run once; SIGKILL the busiest replica.
  const first = await round(() => [replicas['replica-a']!, replicas['replica-b']!])
  const kill = await busiest(first)
  t.comment(`round 1 leases: ${kill.spread}`)
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
  const finals1 = await finish(replicas[survivor]!, first)
  t.comment(`takeover: all ${kill.builds.length} builds of the killed replica held by ${survivor} ${takeoverMs} ms after SIGKILL ` +
    `(lease ${LEASE_SECONDS} s, sweep 1 s)`)
  for (const b of finals1) t.equal(b.state, 'succeeded', `build ${b.id}: ${b.message ?? 'succeeded'}`)
  t.match(replicas[survivor]!.output(), /took over a build whose lease expired/, 'the survivor logged its takeovers')
  await checkBuildsJson(finals1)
  const eachTickOnce = async (server: Server, ids: string[], why: string) => {
    for (const id of ids) {
      const log = (await api(server, `/v1/builds/${id}/log`)).text
      const ticks = Array.from({ length: TICKS }, (_, i) => log.split('\n').filter((l) => l === `tick ${i + 1}`).length)
      t.same(ticks, Array(TICKS).fill(1), `build ${id}: each tick once (${why})`)
    }
  }
  await eachTickOnce(replicas[survivor]!, first, 'across the kill')

  // 2. The killed replica comes back; then the busiest one is paused past its leases.
  await start(kill.victim)
  const second = await round(() => [replicas['replica-a']!, replicas['replica-b']!])
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
  const finals2 = await finish(replicas[other]!, second)
  for (const b of finals2) t.equal(b.state, 'succeeded', `build ${b.id}: ${b.message ?? 'succeeded'}`)
  await checkBuildsJson(finals2)
  await eachTickOnce(replicas[other]!, second, 'across the pause')
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

  sampling = false
  await sampler
  for (const id of [...first, ...second]) t.equal(maxPerBuild.get(id), 1, `build ${id}: one container at every observation`)
  const left = await until('no container left', 30_000, async () => (await containersByBuild(owner)).size === 0).catch(() => false)
  t.ok(left, 'no container left once every build has ended')
})
