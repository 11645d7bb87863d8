import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { LocalStore } from '../../src/artifacts/local-store.js'
import { Publisher } from '../../src/artifacts/publisher.js'
import { SpaceGuard } from '../../src/artifacts/space-guard.js'
import { FileLogStore } from '../../src/logs/file-log-store.js'
import { BuildRunner } from '../../src/builds/build-runner.js'
import { BuildLifecycle } from '../../src/builds/lifecycle.js'
import { Reconciler } from '../../src/builds/reconciler.js'
import { ResultIntake } from '../../src/builds/result-intake.js'
import { WorkdirUploads } from '../../src/builds/workdir-upload.js'
import { loadConfig, type Config } from '../../src/config.js'
import { DataDir } from '../../src/data-dir.js'
import { EngineRegistry } from '../../src/executor/engine-registry.js'
import { JOB_REPORT, type Executor } from '../../src/executor/executor.js'
import { ConfigMirror } from '../../src/git/config-mirror.js'
import { openDatabase } from '../../src/store/open-database.js'
import { FakeExecutor, type Program } from '../executor/fake-executor.js'
import { configRepo, silentLogger, tempDir } from '../helpers.js'

// The build runner with its real parts (store, lifecycle, config mirror,
// result intake, artifact store, logs) on engines in memory (fake-executor.ts),
// or on one real engine the test makes (`executor`).

export interface HarnessOptions {
  timeoutSeconds?: number
  engines?: number
  leaseMs?: number
  arches?: string[]
  /** The one engine, instead of those in memory; with its calls' deadline. */
  executor?: (dataDir: DataDir, config: Config) => Executor
  callTimeoutMs?: number
  /** builds.infrastructureRetries; none unless asked, so that a test sees the first infrastructure failure. */
  infrastructureRetries?: number
  /** builds.engineLostMs. */
  engineLostMs?: number
}

export async function runnerHarness (t: Test, opts: HarnessOptions = {}) {
  const root = await tempDir(t)
  const dataDir = new DataDir(join(root, 'data'))
  const config = loadConfig({}, {
    dataDir: dataDir.root,
    allowFileUrls: true,
    logLevel: 'silent',
    builds: { engineProbeMs: 300, logPollMs: 20, stopGraceSeconds: 0, infrastructureRetries: opts.infrastructureRetries ?? 0, ...(opts.engineLostMs === undefined ? {} : { engineLostMs: opts.engineLostMs }) },
    docker: { heartbeatMs: 100, callTimeoutMs: opts.callTimeoutMs ?? 2000 }
  })
  const store = await openDatabase({}, dataDir.database)
  t.teardown(() => store.close())
  const now = () => new Date()
  const lifecycle = new BuildLifecycle({ store, now, logger: silentLogger, lease: { owner: 'test', ms: opts.leaseMs ?? 30_000 },
    infrastructureRetries: config.builds.infrastructureRetries
  })
  const logs = new FileLogStore(dataDir.logs, config.builds.logMaxBytes)
  const artifacts = new LocalStore(join(root, 'store'))
  const publisher = new Publisher({
    store: artifacts, guard: new SpaceGuard({ dataDir: dataDir.root, store: artifacts, minFreeBytes: 0 }), logger: silentLogger, now
  })
  const fakes = Array.from({ length: opts.engines ?? 1 }, (_, i) =>
    new FakeExecutor({ name: i === 0 ? 'fake' : `fake-${i}`, arch: opts.arches?.[i] ?? (i === 0 ? 'x86_64' : 'aarch64'), workdir: (s, arch) => dataDir.workdir(s, arch) }))
  const engines = new EngineRegistry(opts.executor ? [opts.executor(dataDir, config)] : [fakes[0]!, ...fakes.slice(1)])
  const intake = new ResultIntake({ store, lifecycle, engines })
  const uploads = new WorkdirUploads({ store, engines, leases: lifecycle.leases })
  const runner = new BuildRunner({
    store, lifecycle, engines, logs, dataDir, config, logger: silentLogger, now, publisher, results: intake, uploads, mirror: new ConfigMirror({ timeoutMs: 60_000 })
  })
  t.teardown(() => runner.detachAll())
  const reconciler = new Reconciler({ store, lifecycle, engines, runner, logger: silentLogger, engineLostMs: config.builds.engineLostMs })
  const repo = await configRepo(t)
  // One build runs per stream: tests that need several running use several streams.
  for (const name of ['s', 't', 'u']) {
    await store.streams.putStream({
      name, config: { url: repo.url, ref: 'main' }, image: 'cosa-lite:latest', platforms: [], timeoutSeconds: opts.timeoutSeconds ?? 60,
      keep: 10, resources: {}, recipe: [], createdAt: '', updatedAt: ''
    })
  }
  let seq = 0
  /** Submits and claims a build of `stream` (s, t or u): it is `running`, in phase preparing, not yet run. */
  const claim = async (stream = 's') => {
    await lifecycle.submit({ id: `b${++seq}`, stream, request: { force: false, skipPrune: false }, createdAt: now().toISOString() })
    return (await lifecycle.claimNext(10))!
  }
  const build = async (id: string) => (await store.builds.getBuild(id))!
  const log = (id: string) => readFile(logs.path(id), 'utf8').catch(() => '')
  const until = async (what: string, fn: () => Promise<boolean>, ms = 10_000) => {
    for (const deadline = Date.now() + ms; !await fn();) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  /**
   * A job that makes cosa build `cosaId`: its files in the workdir,
   * builds/latest, meta.json, its report, and the result posted as the
   * container does (`posted: false`: the post did not get through).
   */
  const builds = (cosaId: string, opts: { posted?: boolean, arch?: string } = {}): Program => async (run) => {
    const arch = opts.arch ?? 'x86_64'
    run.print('==> cosa build')
    const dir = join(run.workdir, 'builds', cosaId, arch)
    await mkdir(dir, { recursive: true })
    const bytes = Buffer.from(`an ostree commit of ${cosaId}`)
    await writeFile(join(dir, 'os.tar'), bytes)
    await rm(join(run.workdir, 'builds/latest'), { force: true })
    await symlink(cosaId, join(run.workdir, 'builds/latest'))
    const metaJson = JSON.stringify({
      buildid: cosaId, name: 'n', 'ostree-commit': 'a'.repeat(64), 'ostree-version': cosaId,
      'ostree-timestamp': '2026-01-01T00:00:00Z', 'coreos-assembler.basearch': arch,
      images: { ostree: { path: 'os.tar', sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length } }
    })
    await writeFile(join(dir, 'meta.json'), metaJson)
    await mkdir(join(run.workdir, JOB_REPORT, '..'), { recursive: true })
    await writeFile(join(run.workdir, JOB_REPORT), `${run.job.buildId} built ${arch} ${cosaId}\n`)
    if (opts.posted === false) return { exitCode: 0 }
    if (await intake.authorize(run.job.buildId, run.job.resultToken) !== 'ok') return { exitCode: 9 }
    await intake.accept(run.job.buildId, 'built', arch, metaJson)
    run.print('built')
    return { exitCode: 0 }
  }
  return { fake: fakes[0]!, fakes, engines, store, lifecycle, runner, reconciler, artifacts, publisher, dataDir, intake, claim, build, log, until, builds, config }
}
