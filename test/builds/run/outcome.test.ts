import t from 'tap'
import { decideOutcome, type Observation } from '../../../src/builds/run/outcome.js'

// Every way a build can end, from what was observed: no Docker needed.

const base: Observation = {
  ending: 'exited',
  timeoutSeconds: 60,
  job: { exitCode: 0, oomKilled: false },
  engineWasDown: false,
  posted: { cosaBuildId: '1.0', images: { ostree: {}, qemu: {} } },
  requiredImages: ['ostree', 'qemu'],
  platforms: ['qemu']
}
const exit = (exitCode: number, oomKilled = false) => ({ job: { exitCode, oomKilled } })

const rows: Array<[string, Partial<Observation>, object]> = [
  ['complete result, exit 0: publish', {}, { publish: true, exitCode: 0 }],
  ['cancel asked and the container stopped', { ending: 'cancelled', ...exit(143) }, { state: 'cancelled' }],
  ['cancel wins over a posted result', { ending: 'cancelled' }, { state: 'cancelled' }],
  ['deadline passed', { ending: 'timed_out', ...exit(137) }, { state: 'failed', reason: 'timeout', message: /timeout of 60s/ }],
  ['engine never came back', { job: 'unknown' }, { state: 'failed', reason: 'infrastructure', message: /did not come back/ }],
  ['container deleted', { job: 'gone' }, { state: 'failed', reason: 'lost' }],
  ['engine went down and killed it', { engineWasDown: true, ...exit(143) },
    { state: 'failed', reason: 'infrastructure', exitCode: 143, message: /engine stopped/ }],
  ['engine was down, but the build exited 1 itself', { engineWasDown: true, ...exit(1) }, { state: 'failed', reason: 'exit_code', exitCode: 1 }],
  ['OOM-killed (even with the engine down)', { engineWasDown: true, ...exit(137, true) }, { state: 'failed', reason: 'oom', exitCode: 137 }],
  ['OOM-killed', exit(137, true), { state: 'failed', reason: 'oom' }],
  ['a signal death with the engine up is the build\'s', exit(137), { state: 'failed', reason: 'exit_code', exitCode: 137 }],
  ['non-zero exit', exit(2), { state: 'failed', reason: 'exit_code', exitCode: 2, message: /code 2/ }],
  ['exit 0, nothing posted', { posted: undefined }, { state: 'failed', reason: 'invalid_result', message: /without posting/ }],
  ['exit 0, a posted result was refused', { posted: undefined, rejection: 'result rejected: bad' },
    { state: 'failed', reason: 'invalid_result', message: 'result rejected: bad' }],
  ['an image asked for is missing', { posted: { cosaBuildId: '1.0', images: { ostree: {} } } },
    { state: 'failed', reason: 'invalid_result', message: /no qemu image \(the build asked for qemu\)/ }],
  ['no platform images asked for', { posted: { cosaBuildId: '1.0', images: { ostree: {} } }, requiredImages: ['ostree'] },
    { publish: true, exitCode: 0 }],
  ['boot test passed', { bootTest: { mode: 'gate', status: 'passed', reason: null } }, { publish: true, exitCode: 0, warning: undefined }],
  ['boot test skipped (no kernel): published', { bootTest: { mode: 'gate', status: 'skipped', reason: 'not bootable' } },
    { publish: true, exitCode: 0, warning: undefined }],
  ['gate, boot test failed: nothing published', { bootTest: { mode: 'gate', status: 'failed', reason: 'emergency' } },
    { state: 'failed', reason: 'boot_test', exitCode: 0, message: /boot test failed \(emergency\); nothing was published/ }],
  ['warn, boot test failed: published with a warning', { bootTest: { mode: 'warn', status: 'failed', reason: 'degraded' } },
    { publish: true, exitCode: 0, warning: /although the boot test failed \(degraded\)/ }],
  ['gate, only allowed units failed (kola 77): published with a warning', { bootTest: { mode: 'gate', status: 'warned', reason: 'degraded' } },
    { publish: true, exitCode: 0, warning: /boot test warned/ }],
  ['an incomplete result wins over a failed boot test', {
    posted: { cosaBuildId: '1.0', images: { ostree: {} } }, bootTest: { mode: 'gate', status: 'failed', reason: 'timeout' }
  }, { state: 'failed', reason: 'invalid_result' }],
  ['cancel during the boot test', { ending: 'cancelled', ...exit(143), bootTest: { mode: 'gate', status: 'failed', reason: 'qemu-exited' } },
    { state: 'cancelled' }]
]

for (const [name, change, expected] of rows) {
  t.test(name, async (t) => {
    const decision = decideOutcome({ ...base, ...change })
    t.match(decision, expected)
    if (!('publish' in expected)) t.notOk('publish' in decision, 'not published')
  })
}
