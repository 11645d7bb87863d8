import t from 'tap'
import { containerSpec, UNPRIVILEGED_CAPS } from '../../src/runner/container-spec.js'

const input = {
  buildId: 'b1', stream: 's', owner: 'o', image: 'cosa-lite:latest', script: 'true', resultToken: 'secret',
  workdir: '/data/streams/s/work', mirror: '/data/streams/s/config.git', apiSocketDir: '/data/run/api',
  profile: 'unprivileged' as const, networkMode: 'none', devices: ['/dev/kvm'], memoryBytes: 1 << 30,
  cpus: 2, pids: 1024, stopGraceSeconds: 10
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
