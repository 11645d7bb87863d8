import { mkdir, rename, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { BuildLifecycle } from '../../src/builds/lifecycle.js'
import { ResultIntake } from '../../src/builds/result-intake.js'
import { mintToken } from '../../src/builds/result-token.js'
import { DataDir } from '../../src/data-dir.js'
import { EngineRegistry } from '../../src/executor/engine-registry.js'
import { openDatabase } from '../../src/store/open-database.js'
import { FakeExecutor } from '../executor/fake-executor.js'
import { silentLogger, tempDir } from '../helpers.js'

// What a container posts is checked against the workdir before it is believed.

const meta = (images: Record<string, object>) => JSON.stringify({
  buildid: '1.0', name: 'n', 'ostree-commit': 'a'.repeat(64), 'ostree-version': '1.0',
  'ostree-timestamp': '2026-01-01T00:00:00Z', 'coreos-assembler.basearch': 'x86_64', images
})

t.test('results are checked against the workdir', async (t) => {
  const root = await tempDir(t)
  const dataDir = new DataDir(join(root, 'data'))
  const store = await openDatabase({}, dataDir.database)
  t.teardown(() => store.close())
  const lifecycle = new BuildLifecycle({ store, now: () => new Date(), logger: silentLogger, lease: { owner: 'test', ms: 30_000 }, infrastructureRetries: 0 })
  const engines = new EngineRegistry([new FakeExecutor({ workdir: (stream) => dataDir.workdir(stream) })])
  const intake = new ResultIntake({ store, lifecycle, engines })
  await store.streams.putStream({ name: 's', config: { url: 'file:///x', ref: 'm' }, image: 'i', platforms: [], timeoutSeconds: 1, keep: 10, resources: {}, recipe: [], createdAt: '', updatedAt: '' })
  await lifecycle.submit({ id: 'b', stream: 's', request: { force: false, skipPrune: false }, createdAt: '' })
  await lifecycle.claimNext(1)
  const { token, hash } = mintToken()
  await lifecycle.record('b', { resultTokenHash: hash })
  t.equal(await intake.authorize('b', token), 'ok')
  t.equal(await intake.authorize('b', mintToken().token), 'unknown', 'another token is refused')
  await lifecycle.submit({ id: 'c', stream: 's', request: { force: false, skipPrune: false }, createdAt: '' })
  await store.builds.update('c', ['queued'], { resultTokenHash: mintToken().hash })
  const other = mintToken()
  await store.builds.update('c', ['queued'], { resultTokenHash: other.hash })
  t.equal(await intake.authorize('b', other.token), 'other-build', 'a token of another build is told apart')
  await lifecycle.requestCancel((await store.builds.getBuild('c'))!)
  t.equal(await intake.authorize('c', other.token), 'unknown', 'a token dies with its build')

  const work = dataDir.workdir('s')
  const dir = join(work, 'builds/1.0/x86_64')
  await mkdir(dir, { recursive: true })
  await symlink('1.0', join(work, 'builds/latest'))
  await writeFile(join(dir, 'os.tar'), 'twelve bytes')
  const ok = { ostree: { path: 'os.tar', sha256: 'x', size: 12 } }

  const reject = async (body: string, why: RegExp, arch = 'x86_64') =>
    t.rejects(intake.accept('b', 'built', arch, body), { code: 'BLD_RESULT_REJECTED', message: why })
  await reject('{', /not JSON/)
  await reject(JSON.stringify({ buildid: '1.0' }), /schema/)
  await reject(meta({ ostree: { path: 'os.tar', sha256: 'x', size: 13 } }), /12 bytes, meta.json says 13/)
  await reject(meta({ ostree: { path: '../../../etc/passwd', sha256: 'x' } }), /plain file name/)
  await reject(meta({ ostree: { path: 'missing.tar', sha256: 'x' } }), /does not exist/)
  await reject(meta(ok), /is for x86_64/, 'aarch64')
  const outside = join(root, 'outside')
  await mkdir(outside)
  await writeFile(join(outside, 'os.tar'), 'twelve bytes')
  await mkdir(join(work, 'builds/2.0'), { recursive: true })
  await symlink(outside, join(work, 'builds/2.0/x86_64'))
  await store.builds.update('b', ['running'], {})
  const escaping = meta(ok).replaceAll('"1.0"', '"2.0"')
  await reject(escaping, /builds\/latest is 1\.0, not 2\.0/)
  await symlink('2.0', join(work, 'builds/latest2'))
  await rename(join(work, 'builds/latest2'), join(work, 'builds/latest'))
  await reject(escaping, /leads out of the workdir/)
  t.match((await store.builds.getBuild('b'))?.message, /^result rejected: /, 'the rejection is kept for the final state')

  await lifecycle.record('b', { engine: 'gone' })
  await reject(meta(ok), /the engine gone that runs the build is not configured/)
  await lifecycle.record('b', { engine: 'fake' })
  await rename(join(work, 'builds/latest'), join(work, 'builds/old'))
  await symlink('1.0', join(work, 'builds/latest'))
  const accepted = await intake.accept('b', 'built', 'x86_64', meta(ok))
  t.same(accepted.result?.artifacts, [{ name: 'ostree', path: 'builds/1.0/x86_64/os.tar', sha256: 'x', size: 12 }])
  t.equal(await store.builds.getMeta('b'), undefined, 'meta.json is served once the build has ended')
  await lifecycle.finish((await store.builds.getBuild('b'))!, { state: 'succeeded' })
  t.equal(await store.builds.getMeta('b'), meta(ok), 'verbatim')
  await t.rejects(intake.accept('b', 'built', 'x86_64', meta(ok)), { code: 'BLD_BUILD_NOT_RUNNING' })
})
