import t from 'tap'
import type { Build } from '../../web/types.js'
import { archText, attemptText, bytes, duration, headline, waitingText } from '../../web/format.js'

// How the dashboard words times, sizes and states (the pages themselves are
// tested in a browser: test/http/dashboard.test.ts).

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString()
const build = (over: Partial<Build>): Build => ({
  id: 'b', stream: 's', state: 'queued', request: { force: false, skipPrune: false }, createdAt: at(0), ...over
})

t.test('durations and sizes', async (t) => {
  t.equal(duration(0), '0s')
  t.equal(duration(59_499), '59s')
  t.equal(duration(151_000), '2m 31s')
  t.equal(duration(3 * 3600_000 + 61_000), '3h 1m')
  t.equal(bytes(512), '512 B')
  t.equal(bytes(3 * 1024 * 1024 + 200 * 1024), '3.2 MiB')
  t.equal(bytes(40 * 1024), '40 KiB')
})

t.test('the build page header', async (t) => {
  const now = Date.parse(at(200))
  t.equal(headline(build({ state: 'succeeded', startedAt: at(9), finishedAt: at(160) }), now), 'Succeeded in 2m 31s')
  t.equal(headline(build({ state: 'running', startedAt: at(160) }), now), 'Running for 40s')
  t.equal(headline(build({ state: 'queued' }), now), 'Queued for 3m 20s')
  t.equal(headline(build({ state: 'cancelled', finishedAt: at(5) }), now), 'Cancelled', 'a build that never started has no run time')
})

t.test('what a queued build waits for', async (t) => {
  t.equal(waitingText(build({ queuePosition: 2, waitingFor: 'stream_busy' })), '#2 in line, waiting for another build of its stream')
  t.equal(waitingText(build({ waitingFor: 'slot' })), 'waiting for a free build slot')
  t.equal(waitingText(build({ waitingFor: 'no_engine_for_arch' })), 'waiting for an engine of its arch')
  t.equal(waitingText(build({ state: 'running', queuePosition: 1 })), undefined)
})

t.test('a multi-arch build\'s arches and a retried build\'s attempts', async (t) => {
  const now = Date.parse(at(200))
  t.equal(archText({ arch: 'x86_64', state: 'succeeded', engine: 'local', startedAt: at(0), finishedAt: at(5) }, now), 'succeeded on local, 5s')
  t.equal(archText({ arch: 'aarch64', state: 'running', engine: 'arm', startedAt: at(160) }, now), 'running on arm, 40s', 'a running arch counts up')
  t.equal(archText({ arch: 's390x', state: 'waiting', waitingFor: 'no_engine_for_arch' }, now), 'waiting for an engine of its arch')
  t.equal(archText({ arch: 'aarch64', state: 'failed', reason: 'exit_code', engine: 'arm', message: 'the build exited with code 2' }, now),
    'failed (exit_code) on arm: the build exited with code 2')
  t.equal(archText({ arch: 'ppc64le', state: 'skipped' }, now), 'skipped')
  t.equal(attemptText({ engine: 'e1', startedAt: at(1), endedAt: at(30), state: 'failed', reason: 'infrastructure', failedStep: 'build', message: 'the engine stopped' }),
    'failed in build (infrastructure) on e1 after 29s: the engine stopped')
  t.equal(attemptText({ engine: 'e2', endedAt: at(60), state: 'succeeded' }), 'succeeded on e2')
})
