import { execa } from 'execa'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../../src/config.js'
import { basearch } from '../../../src/cosa/basearch.js'
import { DataDir } from '../../../src/data-dir.js'
import { DockerEngine } from '../../../src/executor/docker/docker-engine.js'
import { DockerExecutor } from '../../../src/executor/docker/docker-executor.js'
import type { LogFrame } from '../../../src/executor/executor.js'
import { IMAGE, reapOwned, requireDocker, tempDir } from '../../helpers.js'
import { jobOf } from '../fake-executor.js'

// The executor seam on the real engine with cosa-lite: what the build
// pipeline asks (executor.ts) answered in neutral terms. The pipeline on top
// of it: test/builds/build-flow.test.ts; the same pipeline on an engine in
// memory: test/builds/build-runner.test.ts.

t.test('a job on the Docker engine: create, start, wait, inspect, its log, find, list, remove', async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = new DataDir(join(await tempDir(t), 'data'))
  const owner = `test-${randomUUID()}`
  reapOwned(t, owner)
  const config = loadConfig({}, { dataDir: dataDir.root })
  const executor = new DockerExecutor({ name: 'local', engine: new DockerEngine(config.docker), dataDir, owner, builds: config.builds })

  t.equal(await executor.arch(), basearch((await execa('uname', ['-m'])).stdout.trim()), 'the engine\'s arch, as cosa names it')
  t.ok((await executor.capacity()).cpus >= 1)
  t.type(await executor.imageUser(IMAGE), 'string')
  t.equal(await executor.imageUser('cosa-buildd-test-absent:0'), undefined, 'an image the engine lacks')
  t.equal(executor.workdir('s'), dataDir.workdir('s'), 'the local engine works in the data directory')
  await mkdir(dataDir.workdir('s'), { recursive: true })
  await mkdir(dataDir.mirror('s'), { recursive: true })

  const buildId = `b-${randomUUID().slice(0, 8)}`
  const job = { ...jobOf(buildId), image: IMAGE, script: 'echo hello; echo oops >&2; exit 3' }
  const id = await executor.create(job)
  t.equal(await executor.create(job), id, 'the build\'s job is reused, not made twice')
  await executor.start(id)
  t.equal(await executor.wait(id, AbortSignal.timeout(60_000)), 3)
  t.same(await executor.inspect(id), { id, running: false, removing: false, exitCode: 3, oomKilled: false })
  t.equal((await executor.findByBuild(buildId))?.id, id, 'found by its build, without its id')

  const frames: LogFrame[] = []
  for await (const batch of await executor.logSnapshot(id, {}, AbortSignal.timeout(30_000))) frames.push(...batch)
  const text = (stream: string) => frames.filter((f) => f.stream === stream).map((f) => f.data.toString()).join('')
  t.match(text('stdout'), /^hello\n$/m, 'stdout, framed')
  t.equal(text('stderr'), 'oops\n', 'stderr apart')
  t.ok(frames.every((f) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/.test(f.ts)), 'each frame with its nanosecond timestamp')

  t.same((await executor.listOwned()).map((j) => j.buildId), [buildId], 'the installation\'s jobs, by their labels')
  await executor.remove(id)
  await executor.remove(id)
  t.equal(await executor.inspect(id), undefined, 'removed (twice is fine)')
  t.same(await executor.listOwned(), [])
})

t.test('devices: the service host\'s for an engine beside it; a remote engine\'s host is asked, once', async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = new DataDir(join(await tempDir(t), 'data'))
  const owner = `test-${randomUUID()}`
  reapOwned(t, owner)
  const config = loadConfig({}, { dataDir: dataDir.root })
  await mkdir(dataDir.workdir('s'), { recursive: true })
  await mkdir(dataDir.mirror('s'), { recursive: true })
  // The engine's host is this one: what it has is what existsSync sees.
  const candidates = ['/dev/kvm', '/dev/fuse', '/dev/cosa-buildd-absent']
  const present = candidates.filter((d) => existsSync(d))
  const engine = new DockerEngine(config.docker)
  const devicesOf = async (executor: DockerExecutor, buildId: string) => {
    const id = await executor.create({ ...jobOf(buildId), image: IMAGE, script: 'true' })
    const { stdout } = await execa('docker', ['inspect', '--format', '{{json .HostConfig.Devices}}', id])
    await executor.remove(id)
    return (JSON.parse(stdout) as Array<{ PathOnHost: string }> | null ?? []).map((d) => d.PathOnHost)
  }
  const local = new DockerExecutor({ name: 'local', engine, dataDir, owner, builds: config.builds, devices: candidates })
  t.same(await devicesOf(local, `b-${randomUUID().slice(0, 8)}`), present, 'beside the service: those its host has')

  const probes: string[] = []
  const counting = new (class extends DockerEngine {
    override runOnce (...args: Parameters<DockerEngine['runOnce']>) {
      probes.push(args[0].name!)
      return super.runOnce(...args)
    }
  })(config.docker)
  const remote = new DockerExecutor({ name: 'remote', engine: counting, dataDir, owner, builds: config.builds, devices: candidates, workspace: 'volume' })
  t.same(await devicesOf(remote, `b-${randomUUID().slice(0, 8)}`), present, 'a remote engine: those the engine could start a container with')
  t.equal(probes.length, candidates.length, 'one probe container per device')
  t.same(await devicesOf(remote, `b-${randomUUID().slice(0, 8)}`), present, 'the next build: the same')
  t.equal(probes.length, candidates.length, 'without probing again')
})
