import Ajv from 'ajv'
import Docker from 'dockerode'
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { metaSchema } from '../../../src/cosa/meta.js'
import { DockerEngine } from '../../../src/executor/docker/docker-engine.js'
import { DockerExecutor } from '../../../src/executor/docker/docker-executor.js'
import { runnerHarness } from '../../builds/runner-harness.js'
import { startEngine, type TestEngine } from '../../engine.js'
import { IMAGE, requireDocker } from '../../helpers.js'

// The `volume` workspace on an engine reached over TCP with mutual TLS, as
// a remote build host: whole cosa-lite builds through the build runner with
// nothing of the service's host mounted into any container.

const validateMeta = new Ajv.default({ strict: false }).compile(metaSchema)

interface Seen { name: string, binds: string[], mounts: Array<{ Type?: string, Name?: string, Source?: string }> }

/** Every container the engine holds while the test runs, inspected as it appears (they are removed after each build). */
function watchContainers (engine: TestEngine) {
  const docker = new Docker({ socketPath: engine.socketPath })
  const seen = new Map<string, Seen>()
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      for (const c of await docker.listContainers({ all: true }).catch(() => [])) {
        if (seen.has(c.Id)) continue
        const info = await docker.getContainer(c.Id).inspect().catch(() => undefined)
        if (info) seen.set(c.Id, { name: info.Name, binds: info.HostConfig.Binds ?? [], mounts: info.Mounts as Seen['mounts'] })
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })()
  return async () => { stopped = true; await loop; return [...seen.values()] }
}

t.test('builds on a TLS engine with the workdir in a volume: published, then unchanged, and no host path mounted', async (t) => {
  if (!await requireDocker(t)) return
  const remote = await startEngine(t, { tls: true, images: [IMAGE] })
  const tls = remote.tls!
  const engine = new DockerEngine({
    host: tls.host, port: tls.port, ca: await readFile(tls.ca), cert: await readFile(tls.cert), key: await readFile(tls.key), callTimeoutMs: 60_000
  })
  const owner = `test-${randomUUID()}`
  const h = await runnerHarness(t, {
    timeoutSeconds: 1200,
    callTimeoutMs: 60_000,
    executor: (dataDir, config) => new DockerExecutor({ name: 'remote', engine, dataDir, owner, builds: config.builds, workspace: 'volume' })
  })
  // The harness's streams build nothing but the commit; a whole build makes its qemu image too.
  await h.store.streams.putStream({ ...(await h.store.streams.getStream('s'))!, platforms: ['qemu'] })
  const containers = watchContainers(remote)
  t.teardown(containers)

  const first = await h.claim('s')
  await h.runner.run(first, h.engines.default)
  const built = await h.build(first.id)
  t.equal(built.state, 'succeeded', `first build: ${built.message ?? ''}\n${(await h.log(first.id)).slice(-3000)}`)
  t.equal(built.engine, 'remote')
  const id = built.result!.cosaBuildId
  const meta = (await h.artifacts.getBytes(`s/builds/${id}/${built.arch}/meta.json`))!
  t.ok(validateMeta(JSON.parse(meta.toString())), 'the published meta.json is valid against cosa\'s schema')
  t.match(await h.log(first.id), /copied \d+ files \(\d+ bytes\) of build .* from the engine remote/)
  for (const a of built.result!.artifacts) t.ok(await h.artifacts.getBytes(`s/builds/${id}/${built.arch}/${a.path.split('/').pop()}`), `${a.name} is in the store`)

  const second = await h.claim('s')
  await h.runner.run(second, h.engines.default)
  const again = await h.build(second.id)
  t.equal(again.state, 'unchanged', `second build: ${again.message ?? ''}\n${(await h.log(second.id)).slice(-3000)}`)
  t.equal(again.result?.cosaBuildId, id, 'the volume was in step with the store: cosa found nothing changed')

  // A fresh volume (a new engine, a wiped one) learns from the store alone.
  await h.engines.default.removeWorkspace('s')
  const third = await h.claim('s')
  await h.runner.run(third, h.engines.default)
  const fresh = await h.build(third.id)
  t.equal(fresh.state, 'unchanged', `build on a fresh volume: ${fresh.message ?? ''}\n${(await h.log(third.id)).slice(-3000)}`)
  t.equal(fresh.result?.cosaBuildId, id, 'the sync through the API gave it the store\'s latest build')

  const seen = await containers()
  t.ok(seen.filter((c) => c.name.startsWith('/cosa-buildd-ws-')).length >= 3, 'a sync container for each build was seen')
  t.ok(seen.filter((c) => /^\/cosa-buildd-b\d+$/.test(c.name)).length >= 3, 'and each build container')
  for (const c of seen) {
    t.same(c.binds, [], `${c.name}: no bind mount`)
    t.ok(c.mounts.every((m) => m.Type === 'volume' && m.Name?.startsWith('cosa-buildd-')), `${c.name}: only the stream's volume`)
  }
  const { stdout } = await remote.docker('volume', 'ls', '-q', '--filter', `label=io.cosa-buildd.owner=${owner}`)
  t.equal(stdout.trim().split('\n').length, 1, 'one volume, labelled as this installation\'s')
  await h.engines.default.removeWorkspace('s')
  await h.engines.default.removeWorkspace('s')
  t.equal((await remote.docker('volume', 'ls', '-q', '--filter', `label=io.cosa-buildd.owner=${owner}`)).stdout.trim(), '', 'removed with the stream (twice is fine)')
})
