import t from 'tap'
import { containerSpec, hardeningProblems, UNPRIVILEGED_CAPS, userProbeSpec, workspaceSyncSpec, type ContainerSpec } from '../../../src/executor/docker/container-spec.js'
import { DockerEngine } from '../../../src/executor/docker/docker-engine.js'
import { EngineError } from '../../../src/executor/executor.js'
import { execa } from 'execa'

const input = {
  buildId: 'b1', stream: 's', owner: 'o', image: 'cosa-lite:latest', script: 'true', resultToken: 'secret',
  workspace: { kind: 'host' as const, workdir: '/data/streams/s/work', mirror: '/data/streams/s/config.git', apiSocketDir: '/data/run/api' },
  profile: 'unprivileged' as const, networkMode: 'none', devices: ['/dev/kvm'], memoryBytes: 1 << 30,
  cpus: 2, pids: 1024, stopGraceSeconds: 10, log: { fileBytes: 10 * 1024 * 1024, files: 3 }
}

t.test('the unprivileged profile', async (t) => {
  const spec = containerSpec(input)
  t.equal(spec.name, 'cosa-buildd-b1')
  t.same(spec.Cmd!.slice(0, 4), ['shell', '--', 'bash', '-c'])
  const host = spec.HostConfig!
  t.same(host.CapDrop, ['ALL'])
  t.same(host.CapAdd, UNPRIVILEGED_CAPS)
  t.notOk(host.Privileged)
  t.same(host.SecurityOpt, ['no-new-privileges'])
  t.same(host.Devices, [{ PathOnHost: '/dev/kvm', PathInContainer: '/dev/kvm', CgroupPermissions: 'rwm' }])
  t.equal(host.Memory, 1 << 30)
  t.equal(host.MemorySwap, 1 << 30, 'no swap')
  t.equal(host.NanoCpus, 2e9)
  t.equal(host.PidsLimit, 1024)
  t.ok(host.Init)
  t.same(host.LogConfig, { Type: 'json-file', Config: { 'max-size': '10485760', 'max-file': '3' } })
  t.same(host.Binds, ['/data/streams/s/work:/srv:rw', '/data/streams/s/config.git:/run/cosa-buildd/config.git:ro',
    '/data/run/api:/run/cosa-buildd/api:rw'])
  t.notOk(JSON.stringify(spec).includes('docker.sock'))
  t.ok(spec.Env!.includes('COSA_BUILDD_RESULT_SOCKET=/run/cosa-buildd/api/api.sock'))
})

t.test('the privileged profile, and results over a URL', async (t) => {
  const spec = containerSpec({ ...input, profile: 'privileged', resultUrl: 'http://api.example:8080/' })
  t.equal(spec.HostConfig!.Privileged, true)
  t.notOk(spec.HostConfig!.CapDrop)
  t.ok(spec.Env!.includes('COSA_BUILDD_RESULT_URL=http://api.example:8080/v1/builds/b1/result'))
  t.notOk(spec.Env!.some((e) => e.startsWith('COSA_BUILDD_RESULT_SOCKET')))
  t.equal(spec.HostConfig!.Binds!.length, 2, 'no socket mount')
})

t.test('a volume workspace: nothing of the service host is mounted, the result is left in the workdir', async (t) => {
  const spec = containerSpec({ ...input, workspace: { kind: 'volume', volume: 'cosa-buildd-0123-s' }, resultUrl: 'http://api.example:8080/' })
  const host = spec.HostConfig!
  t.equal(host.Binds, undefined, 'no bind mount')
  t.same(host.Mounts, [{ Type: 'volume', Source: 'cosa-buildd-0123-s', Target: '/srv', ReadOnly: false }])
  t.ok(spec.Env!.includes('COSA_BUILDD_RESULT_FILE=/srv/.cosa-buildd/report'))
  t.notOk(spec.Env!.some((e) => /^COSA_BUILDD_RESULT_(URL|SOCKET)=/.test(e)), 'nothing to post to')
  t.ok(spec.Env!.includes('COSA_BUILDD_UPLOAD_URL=http://api.example:8080/v1/builds/b1/workdir'),
    'where the build may send its files itself (if its network reaches the API)')
  const noUrl = containerSpec({ ...input, workspace: { kind: 'volume', volume: 'cosa-buildd-0123-s' } })
  t.notOk(noUrl.Env!.some((e) => e.startsWith('COSA_BUILDD_UPLOAD_URL=')), 'no resultUrl: nowhere to send them')
  t.equal(host.NetworkMode, 'none')
  const sync = workspaceSyncSpec({ image: 'cosa-lite:latest', volume: 'cosa-buildd-0123-s', owner: 'o', buildId: 'b1', ids: { uid: 1000, gid: 1000 } })
  t.same(sync.HostConfig!.Mounts, host.Mounts, 'the sync container mounts the same volume')
  t.equal(sync.HostConfig!.Binds, undefined)
  t.same(sync.Entrypoint!.slice(-2), ['.cosa-buildd/report', '1000:1000'], 'it removes the last report and hands files to the image user')
  t.same(hardeningProblems(sync), [])
  t.equal(sync.HostConfig!.NetworkMode, 'none')
})

t.test('every spec the service makes passes the hardening check, and a weakened one does not', async (t) => {
  const build = containerSpec(input)
  const probe = userProbeSpec({ image: 'cosa-lite:latest', user: 'builder', owner: 'o', buildId: 'b1' })
  t.same(hardeningProblems(build), [], 'a build container')
  t.same(hardeningProblems(containerSpec({ ...input, profile: 'privileged' })), [], 'the privileged profile, chosen by the operator')
  t.same(hardeningProblems(probe), [], 'a user probe')
  t.equal(probe.HostConfig!.ReadonlyRootfs, true)
  t.equal(probe.HostConfig!.NetworkMode, 'none')
  const weaken = (change: (s: ContainerSpec) => void) => {
    const copy = structuredClone(build)
    change(copy)
    return hardeningProblems(copy).join('; ')
  }
  t.match(weaken((s) => { s.HostConfig!.CapDrop = [] }), /CapDrop ALL/)
  t.match(weaken((s) => { s.HostConfig!.CapAdd = ['SYS_ADMIN'] }), /beyond the unprivileged profile/)
  t.match(weaken((s) => { s.HostConfig!.SecurityOpt = [] }), /no-new-privileges/)
  t.match(weaken((s) => { s.HostConfig!.MemorySwap = -1 }), /memory/)
  t.match(weaken((s) => { delete s.HostConfig!.PidsLimit }), /process limit/)
  t.match(weaken((s) => { delete s.HostConfig!.NanoCpus }), /CPU limit/)
  t.match(weaken((s) => { s.HostConfig!.Binds!.push('/var/run/docker.sock:/var/run/docker.sock') }), /engine socket/)
  t.match(weaken((s) => { s.Labels = {} }), /labels/)
})

t.test('the engine refuses to create a container that is not hardened', async (t) => {
  const engine = new DockerEngine({ socketPath: '/var/run/docker.sock', callTimeoutMs: 10_000 })
  const spec = structuredClone(userProbeSpec({ image: 'cosa-lite:latest', user: 'root', owner: 'test-hardening', buildId: 'b1' }))
  spec.HostConfig!.CapDrop = []
  const err = await engine.create(spec).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof EngineError && err.kind === 'refused', 'refused')
  t.match((err as Error).message, /container cosa-buildd-id-.* is not hardened: capabilities are not dropped/)
  const { stdout } = await execa('docker', ['ps', '-aq', '--filter', 'label=io.cosa-buildd.owner=test-hardening'])
  t.equal(stdout.trim(), '', 'nothing was created')
})
