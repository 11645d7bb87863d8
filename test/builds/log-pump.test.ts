import t from 'tap'
import { logLoss } from '../../src/builds/log-pump.js'
import { DEFAULT_RECIPE } from '../../src/cosa/recipe.js'
import { configRepo, register, requireDocker, startApp, submit, type TestApp } from '../helpers.js'
import { checkFlood, floodScript } from '../server-process.js'

// Build logs under a flood, on real containers: the engine's json-file log
// rotates every 64 KiB (about 450 of these lines), far more often than the
// 10 MiB of production, so every build crosses dozens of rotations. Each
// stored log and each follower's copy must be exactly what the container
// printed: every line once, in order, per stream.

// 100 files keep 6.4 MiB: room for the pump to fall behind on 2 busy cores without loss.
const ROTATE = { logFileBytes: 64 * 1024, logFiles: 100, logPollMs: 100 }
const TERMINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']

const flood = (lines: number, pauseEvery = 0) => [['shell', '--', 'bash', '-c', floodScript(lines, pauseEvery)], ...DEFAULT_RECIPE]

async function logOf (h: TestApp, id: string) {
  return (await h.app.inject({ url: `/v1/builds/${id}/log` })).body
}

t.test('a flood across many rotations: stored logs and followers have every line once, in order', async (t) => {
  if (!await requireDocker(t)) return
  const BUILDS = 4
  const LINES = 20_000
  const FOLLOWERS = 3
  const h = await startApp(t, { builds: { maxConcurrent: BUILDS, ...ROTATE } })
  const repo = await configRepo(t)
  const ids: string[] = []
  for (let i = 0; i < BUILDS; i++) {
    await register(h, `f${i}`, { config: { url: repo.url, ref: 'main' }, recipe: flood(LINES) })
    ids.push((await submit(h, `f${i}`)).id)
  }
  const started = Date.now()
  const followers = ids.flatMap((id) => Array.from({ length: FOLLOWERS }, async () =>
    ({ id, body: (await h.app.inject({ url: `/v1/builds/${id}/log?follow=true` })).body })))
  const copies = await Promise.all(followers)
  t.comment(`${BUILDS} builds × ${LINES} lines, ${FOLLOWERS} followers each: ${Date.now() - started} ms`)
  for (const id of ids) {
    const build = (await h.app.inject({ url: `/v1/builds/${id}` })).json()
    t.equal(build.state, 'succeeded', `build ${id} ${build.state}: ${build.message ?? ''}`)
    const log = await logOf(h, id)
    t.same(checkFlood(log, LINES), { lines: LINES, repeated: 0, lost: 0, errLines: LINES / 100, errRepeated: 0, errLost: 0 },
      `build ${id}: the stored log has every line once, in order`)
    t.notMatch(log, /was lost/, `build ${id}: no loss reported`)
    for (const copy of copies.filter((c) => c.id === id)) {
      t.equal(copy.body, log, `build ${id}: a follower's copy is the stored log`)
    }
  }
})

t.test('output the engine rotated away before it was read is reported where it was lost', async (t) => {
  if (!await requireDocker(t)) return
  // Two files of 64 KiB hold about 900 lines; the pump looks only every 3 s
  // (the second look finds "first"), and the burst comes between two looks.
  const h = await startApp(t, { builds: { logFileBytes: 64 * 1024, logFiles: 2, logPollMs: 3000 } })
  const repo = await configRepo(t)
  const script = `echo first; sleep 4; ${floodScript(5000)}`
  await register(h, 'lossy', { config: { url: repo.url, ref: 'main' }, recipe: [['shell', '--', 'bash', '-c', script], ...DEFAULT_RECIPE] })
  const before = logLoss.events
  const { id } = await submit(h, 'lossy')
  await h.waitFor(id, TERMINAL, 60_000)
  const log = await logOf(h, id)
  const lines = log.split('\n')
  const note = lines.findIndex((l) => /^==> cosa-buildd: output of the build container between \S+ and \S+ was lost/.test(l))
  t.ok(note > 0, 'a service line says output was lost')
  t.ok(lines.indexOf('first') >= 0 && lines.indexOf('first') < note, 'after what was read before it')
  const after = lines.slice(note + 1).filter((l) => l.startsWith('line ')).map((l) => Number(l.split(' ')[1]))
  t.ok(after.length > 100 && after.length < 5000, `what the engine still had follows it (${after.length} lines)`)
  t.same(after, Array.from({ length: after.length }, (_, i) => 5000 - after.length + 1 + i), 'in order, once, up to the last line')
  t.equal(lines.slice(0, note).filter((l) => l.startsWith('line ')).length, 0, 'nothing of the burst before the note')
  t.equal(logLoss.events - before, 1, 'the loss is counted once')
})
