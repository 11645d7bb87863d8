import t from 'tap'
import { endedAttempt, failedEngines, shouldRetry } from '../../src/builds/retry-policy.js'
import type { Build } from '../../src/builds/model.js'

// The decision alone; test/builds/lifecycle.test.ts has it written through
// the store, test/engines/retries.test.ts on real engines.

const infra = { state: 'failed', reason: 'infrastructure' } as const

t.test('only an infrastructure failure is retried, while retries are left and no cancel was asked', async (t) => {
  t.ok(shouldRetry({ final: infra, earlier: 0, cancelRequested: false, allowed: 1 }))
  t.notOk(shouldRetry({ final: infra, earlier: 1, cancelRequested: false, allowed: 1 }), 'the retries are used up')
  t.ok(shouldRetry({ final: infra, earlier: 1, cancelRequested: false, allowed: 2 }))
  t.notOk(shouldRetry({ final: infra, earlier: 0, cancelRequested: false, allowed: 0 }), 'builds.infrastructureRetries 0')
  t.notOk(shouldRetry({ final: infra, earlier: 0, cancelRequested: true, allowed: 1 }), 'a cancel was requested')
  for (const reason of ['exit_code', 'oom', 'timeout', 'lost', 'invalid_result', 'publish_failed', 'image_unavailable'] as const) {
    t.notOk(shouldRetry({ final: { state: 'failed', reason }, earlier: 0, cancelRequested: false, allowed: 1 }), reason)
  }
  for (const state of ['succeeded', 'unchanged', 'cancelled'] as const) {
    t.notOk(shouldRetry({ final: { state }, earlier: 0, cancelRequested: false, allowed: 1 }), state)
  }
})

t.test('an attempt records its engine, times, how it ended and the step it failed in', async (t) => {
  const build = {
    id: 'b', seq: 1, stream: 's', state: 'running', request: { force: false, skipPrune: false }, createdAt: '2026-01-01T00:00:00.000Z',
    engine: 'e1', arch: 'x86_64', startedAt: '2026-01-01T00:00:01.000Z', phase: 'build'
  } satisfies Build
  t.same(endedAttempt(build, { ...infra, message: 'the engine went away' }, '2026-01-01T00:01:00.000Z'), {
    engine: 'e1', arch: 'x86_64', startedAt: '2026-01-01T00:00:01.000Z', endedAt: '2026-01-01T00:01:00.000Z',
    state: 'failed', reason: 'infrastructure', message: 'the engine went away', failedStep: 'build'
  })
  t.same(Object.keys(endedAttempt(build, { state: 'succeeded' }, '2026-01-01T00:01:00.000Z')).sort(),
    ['arch', 'endedAt', 'engine', 'startedAt', 'state'], 'no keys for what is unset; a succeeded attempt has no failed step')
})

t.test('the engines that failed earlier attempts', async (t) => {
  const at = '2026-01-01T00:00:00.000Z'
  t.same(failedEngines({
    attempts: [
      { engine: 'e1', endedAt: at, state: 'failed', reason: 'infrastructure' },
      { engine: 'e2', endedAt: at, state: 'failed', reason: 'exit_code' },
      { endedAt: at, state: 'failed', reason: 'infrastructure' }
    ]
  }), ['e1'])
  t.same(failedEngines({}), [])
})
