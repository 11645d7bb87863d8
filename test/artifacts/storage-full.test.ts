import { execa } from 'execa'
import { mkdir, readdir, rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { buildOnce, configRepo, register, requireDocker, startApp, tempDir } from '../helpers.js'

// A local store on a small tmpfs: a publish that runs out of space fails the
// build and lists nothing; below the free-space threshold submits get 503
// while reads go on; freeing space is all it takes to build again.

const MiB = 1024 ** 2

t.test('a full store fails the publish, refuses submits, keeps serving, and recovers', async (t) => {
  if (!await requireDocker(t)) return
  const store = await tempDir(t, 'cosa-buildd-small-store-')
  const mounted = await execa('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', store], { reject: false })
  if (mounted.exitCode !== 0) {
    t.fail(`mounting a tmpfs needs root: ${mounted.stderr}`)
    return
  }
  t.teardown(() => execa('umount', ['-l', store], { reject: false }))
  const h = await startApp(t, { storage: { minFreeBytes: 2 * MiB, artifacts: { kind: 'local', path: store } } })
  const repo = await configRepo(t)
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' } })

  // Leave 2.5 MiB: above the threshold, below the ~3 MiB qcow2.
  const free = async () => { const s = await statfs(store); return s.bavail * s.bsize }
  await mkdir(join(store, 'filler'))
  await writeFile(join(store, 'filler/a'), Buffer.alloc((await free()) - 2.5 * MiB))
  const full = await buildOnce(h, 'minimal')
  t.equal(full.state, 'failed', 'the publish ran out of space')
  t.equal(full.reason, 'publish_failed')
  t.match(full.message, /no space left on device/)
  t.same((await readdir(store)).filter((f) => f !== 'filler' && f !== '.staging'), ['minimal'])
  t.same(await readdir(join(store, 'minimal/builds')).catch(() => []), [], 'no partial build is stored')
  t.same(await readdir(join(store, '.staging')).catch(() => []), [], 'no staging file is left')
  t.equal((await h.app.inject({ url: '/v1/streams/minimal/builds/builds.json' })).statusCode, 404, 'nothing is listed')

  // Below the threshold: submits wait for space, reads do not.
  await writeFile(join(store, 'filler/b'), Buffer.alloc((await free()) - 1 * MiB))
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const refused = await h.app.inject({ method: 'POST', url: '/v1/streams/minimal/builds', payload: {} })
  t.equal(refused.statusCode, 503, 'submits are refused')
  t.equal(refused.json().code, 'BLD_STORAGE_LOW')
  t.match(refused.json().message, /artifact store has \d+ MiB free, below the 2 MiB/)
  t.equal(refused.headers['retry-after'], '60')
  t.equal((await h.app.inject({ url: `/v1/builds/${full.id}` })).statusCode, 200, 'reads keep working')
  t.equal((await h.app.inject({ url: `/v1/builds/${full.id}/log` })).statusCode, 200)
  t.equal((await h.app.inject({ url: '/v1/streams/minimal' })).statusCode, 200)
  const ready = await h.app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200, 'the instance stays ready for reads')
  t.match(ready.json(), { status: 'degraded', checks: { storage: { ok: false, message: /below the 2 MiB/ }, docker: { ok: true } } })

  await rm(join(store, 'filler'), { recursive: true })
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const after = await buildOnce(h, 'minimal')
  t.equal(after.state, 'succeeded', `with space again, the build is made anew and published: ${after.message ?? ''}`)
  t.equal(after.result.cosaBuildId, full.result.cosaBuildId, 'with the same id: the store never listed the failed one')
  t.match((await h.app.inject({ url: `/v1/builds/${after.id}/log` })).body, `removed unpublished builds from the workdir: ${full.result.cosaBuildId}`)
  const download = await h.app.inject({ url: after.result.artifacts.find((a: { name: string }) => a.name === 'qemu').url })
  t.equal(download.statusCode, 200)
})
