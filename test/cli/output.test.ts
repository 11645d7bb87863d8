import { PassThrough } from 'node:stream'
import t from 'tap'
import type { Api, Build } from '../../src/cli/client.js'
import { printBuild } from '../../src/cli/output.js'

// What a person reads of a build with a boot test.

t.test('a build shows how its boot test ended and where the console is', async (t) => {
  const out = new PassThrough()
  const io = { out, err: new PassThrough(), json: false }
  const api = { link: (p: string) => `http://h${p}` } as unknown as Api
  const build = {
    id: 'b1',
    stream: 's',
    state: 'failed',
    reason: 'boot_test',
    failedStep: 'kola run basic',
    message: 'the boot test failed (degraded); nothing was published',
    request: { force: false, skipPrune: false },
    createdAt: '2026-01-01T00:00:00Z',
    bootTest: {
      status: 'failed', reason: 'degraded', accel: 'tcg', durationMs: 25120, milestones: {}, systemState: 'degraded',
      failedUnits: ['x.service'], bootedCommit: null, findings: []
    }
  } as unknown as Build
  printBuild(io, api, build)
  const text = String(out.read())
  t.match(text, 'failed in kola run basic (boot_test)')
  t.match(text, '  boot test failed (degraded: x.service), tcg 25.1 s, console http://h/v1/builds/b1/boot-test/console.txt\n')
})

t.test('a retried build lists its attempts; one that ran once does not', async (t) => {
  const print = (build: Partial<Build>) => {
    const out = new PassThrough()
    printBuild({ out, err: new PassThrough(), json: false }, { link: (p: string) => p } as unknown as Api,
      { id: 'b2', stream: 's', request: { force: false, skipPrune: false }, createdAt: '2026-01-01T00:00:00Z', ...build } as Build)
    return String(out.read())
  }
  const failed = {
    engine: 'e1', startedAt: '2026-01-01T00:00:01Z', endedAt: '2026-01-01T00:00:30Z', state: 'failed', reason: 'infrastructure',
    failedStep: 'build', message: 'the Docker engine stopped during the build'
  } as const
  const text = print({ state: 'succeeded', attempts: [failed, { engine: 'e2', endedAt: '2026-01-01T00:01:00Z', state: 'succeeded' }] })
  t.match(text, '  attempt 1 on e1: failed in build (infrastructure), 2026-01-01T00:00:01Z – 2026-01-01T00:00:30Z: the Docker engine stopped during the build\n')
  t.match(text, '  attempt 2 on e2: succeeded, ? – 2026-01-01T00:01:00Z\n')
  t.match(print({ state: 'queued', attempts: [failed] }), 'attempt 1 on e1: failed in build', 'queued again: its failed attempt')
  t.notMatch(print({ state: 'succeeded', attempts: [{ engine: 'e1', endedAt: '2026-01-01T00:01:00Z', state: 'succeeded' }] }), 'attempt')
})

t.test('a multi-arch build shows each arch: state, engine, time, and the other arches\' artifacts', async (t) => {
  const out = new PassThrough()
  const api = { link: (p: string) => `http://h${p}` } as unknown as Api
  const artifact = (arch: string) => ({ name: 'qemu', path: `builds/1.0/${arch}/q.qcow2`, sha256: 'ab', size: 1, url: `/v1/streams/s/builds/1.0/${arch}/q.qcow2` })
  const build = {
    id: 'b2',
    stream: 's',
    state: 'failed',
    reason: 'exit_code',
    message: 's390x: the build exited with code 2 (x86_64 succeeded, aarch64 succeeded)',
    request: { force: false, skipPrune: false },
    createdAt: '2026-01-01T00:00:00Z',
    result: { cosaBuildId: '1.0', arch: 'x86_64', ostreeCommit: 'c', artifacts: [] },
    arches: [
      { arch: 'x86_64', state: 'succeeded', engine: 'local', startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:00:03.2Z' },
      { arch: 'aarch64', state: 'succeeded', engine: 'arm', result: { cosaBuildId: '1.0', arch: 'aarch64', ostreeCommit: 'd', artifacts: [artifact('aarch64')] } },
      { arch: 's390x', state: 'failed', reason: 'exit_code', engine: 'z', message: 'the build exited with code 2' },
      { arch: 'ppc64le', state: 'skipped' }
    ]
  } as unknown as Build
  printBuild({ out, err: new PassThrough(), json: false }, api, build)
  const text = String(out.read())
  t.match(text, '  x86_64: succeeded on local, 3.2 s\n  aarch64: succeeded on arm\n    qemu: http://h/v1/streams/s/builds/1.0/aarch64/q.qcow2  sha256 ab\n' +
    '  s390x: failed (exit_code) on z: the build exited with code 2\n  ppc64le: skipped\n')
})
