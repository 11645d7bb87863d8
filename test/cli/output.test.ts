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
