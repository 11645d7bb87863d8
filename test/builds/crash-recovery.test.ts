import { execa } from 'execa'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { configRepo, reapOwned, requireDocker, tempDir } from '../helpers.js'
import { api, sleep, startServer, tickRecipe, until } from '../server-process.js'

// R3 (reliability plan): the API process is SIGKILLed while ten builds run.
// Their containers keep running; the next start adopts them and they finish.
// Never more than one container per build, none left once all have ended,
// and no log line written twice across the crash.

const BUILDS = 10
const TICKS = 15
const TERMINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']
const RESTART_NOTE = '==> cosa-buildd: service restarted; following the build container again'
const lastTick = (log: string) => Math.max(0, ...[...log.matchAll(/^tick (\d+)$/gm)].map((m) => Number(m[1])))

const recipe = tickRecipe(TICKS)

/** build id -> container states, for every container of this data dir's instance. */
async function containersByBuild (owner: string) {
  const { stdout } = await execa('docker', ['ps', '-a', '--filter', `label=io.cosa-buildd.owner=${owner}`,
    '--format', '{{.Label "io.cosa-buildd.build-id"}}\t{{.State}}'])
  const byBuild = new Map<string, string[]>()
  for (const line of stdout.split('\n').filter(Boolean)) {
    const [build = '', state = ''] = line.split('\t')
    byBuild.set(build, [...(byBuild.get(build) ?? []), state])
  }
  return byBuild
}

t.test('SIGKILL mid-build: running builds are adopted after a restart and complete', { timeout: 10 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = await tempDir(t, 'cosa-r3-')
  const repo = await configRepo(t)
  let server = await startServer(t, dataDir, BUILDS)
  const owner = (await readFile(join(dataDir, 'instance-id'), 'utf8')).trim()
  reapOwned(t, owner)

  // At most one container per build, at every observation of the whole test.
  const maxPerBuild = new Map<string, number>()
  let samples = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      try {
        for (const [build, states] of await containersByBuild(owner)) {
          maxPerBuild.set(build, Math.max(maxPerBuild.get(build) ?? 0, states.length))
        }
        samples++
      } catch {}
      await sleep(500)
    }
  })()
  t.teardown(async () => { sampling = false; await sampler })

  const ids: string[] = []
  for (let i = 0; i < BUILDS; i++) {
    const reg = await api(server, `/v1/streams/s${i}`, { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe } })
    t.ok(reg.status < 300, `register s${i}: ${reg.status} ${reg.status < 300 ? '' : reg.text}`)
  }
  for (let i = 0; i < BUILDS; i++) {
    const sub = await api(server, `/v1/streams/s${i}/builds`, { method: 'POST', body: {} })
    t.equal(sub.status, 202, `submit s${i}`)
    ids.push(sub.json().id)
  }

  // Every build has its container and the container has been logging for a while.
  await until('every build to run and log "tick 2"', 5 * 60_000, async () => {
    for (const id of ids) {
      const b = (await api(server, `/v1/builds/${id}`)).json()
      if (TERMINAL.includes(b.state)) throw new Error(`build ${id} ended early: ${b.state} ${b.message ?? ''}`)
      if (!b.containerId) return false
      if (!/^tick 2$/m.test((await api(server, `/v1/builds/${id}/log`)).text)) return false
    }
    return true
  })

  const killedAt = Date.now()
  server.child.kill('SIGKILL')
  const killed = await server.child
  t.equal(killed.signal, 'SIGKILL', 'the API process died by SIGKILL')

  const afterKill = await containersByBuild(owner)
  for (const id of ids) {
    t.same(afterKill.get(id), ['running'], `build ${id}: its one container still runs after the API died`)
  }
  t.equal(afterKill.size, BUILDS, 'no other container of this instance')

  // What the dead process had written (the next start may drop an unchecked tail).
  const tickAtKill = new Map<string, number>()
  for (const id of ids) tickAtKill.set(id, lastTick(await readFile(join(dataDir, 'logs', `${id}.log`), 'utf8').catch(() => '')))

  const restartAt = Date.now()
  server = await startServer(t, dataDir, BUILDS)
  const listeningMs = Date.now() - restartAt
  // Adopted: the log grows again with the container's output (or the build has ended).
  await until('every build to be followed again', 5 * 60_000, async () => {
    for (const id of ids) {
      if (lastTick((await api(server, `/v1/builds/${id}/log`)).text) > tickAtKill.get(id)!) continue
      if (!TERMINAL.includes((await api(server, `/v1/builds/${id}`)).json().state)) return false
    }
    return true
  })
  const adoptedMs = Date.now() - restartAt
  const finals = await until('every build to end', 8 * 60_000, async () => {
    const builds = await Promise.all(ids.map(async (id) => (await api(server, `/v1/builds/${id}`)).json()))
    return builds.every((b) => TERMINAL.includes(b.state)) && builds
  })
  const recoveryMs = Date.now() - restartAt
  t.comment(`R3 recovery: listening ${listeningMs} ms after restart, all ${BUILDS} followed again after ${adoptedMs} ms, ` +
    `all terminal ${recoveryMs} ms after restart (${Date.now() - killedAt} ms after SIGKILL; ` +
    `the builds' own remaining work is included)`)

  for (const b of finals) t.equal(b.state, 'succeeded', `build ${b.id} (${b.stream}) adopted and completed: ${b.message ?? ''}`)

  // Removal comes before the final state; allow the engine a moment anyway.
  const left = await until('no container of this instance', 30_000, async () => {
    const now = await containersByBuild(owner)
    return now.size === 0 ? now : false
  }).catch(async () => containersByBuild(owner))
  t.equal([...left.values()].flat().length, 0, 'no container left once every build has ended')

  sampling = false
  await sampler
  t.ok(samples > 10, `containers sampled ${samples} times`)
  const worst = Math.max(0, ...maxPerBuild.values())
  t.comment(`R3 containers: at most ${worst} per build over ${samples} samples`)
  for (const id of ids) t.equal(maxPerBuild.get(id), 1, `build ${id}: exactly one container at every observation`)
  t.equal(maxPerBuild.size, BUILDS, 'no container of this instance belonged to anything else')

  for (const id of ids) {
    const log = (await api(server, `/v1/builds/${id}/log`)).text
    const lines = log.split('\n')
    const ticks = Array.from({ length: TICKS }, (_, i) => lines.filter((l) => l === `tick ${i + 1}`).length)
    t.same(ticks, Array(TICKS).fill(1), `build ${id}: each tick appears exactly once`)
    // The adopting start says so in the log, once; resuming the log must not erase it.
    t.equal(lines.filter((l) => l === RESTART_NOTE).length, 1, `build ${id}: one restart note`)
    const steps = lines.filter((l) => l.startsWith('==> '))
    const repeated = steps.filter((l, i) => steps.indexOf(l) !== i)
    t.same(repeated, [], `build ${id}: no service or step line repeated`)
    t.match(log, /==> cosa-buildd: build succeeded\n$/, `build ${id}: the log ends with the final state`)
  }
})
