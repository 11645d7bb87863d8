import t from 'tap'
import { EngineHealth } from '../../src/engines/engine-health.js'
import { EngineRegistry } from '../../src/executor/engine-registry.js'
import { FakeExecutor } from '../executor/fake-executor.js'

// Probing engines on engines in memory; the real ones (a socket, TLS, a
// wrong certificate) are probed in test/http/engines.test.ts.

/** An engine that does not answer version until released, as one that hangs. */
class SlowEngine extends FakeExecutor {
  #hanging = true
  readonly #waiting: Array<() => void> = []
  release () {
    this.#hanging = false
    for (const answer of this.#waiting.splice(0)) answer()
  }

  override async version (signal?: AbortSignal) {
    if (this.#hanging) {
      await new Promise<void>((resolve, reject) => {
        this.#waiting.push(resolve)
        signal?.addEventListener('abort', () => reject(new Error('version: the Docker engine did not answer in time')), { once: true })
      })
    }
    return 'slow-1'
  }
}

t.test('status per engine; a down engine keeps its arch and says why; the last error outlives recovery', async (t) => {
  const a = new FakeExecutor({ name: 'a', arch: 'aarch64', workdir: () => '/x' })
  const health = new EngineHealth({ registry: new EngineRegistry([a]), timeoutMs: 1000, maxAgeMs: 0, now: () => new Date('2026-12-01T00:00:00Z') })
  t.equal(health.status('a'), undefined, 'nothing known before a probe')
  await health.refresh()
  t.match(health.status('a'), { reachable: true, version: 'fake-1.0', arch: 'aarch64', checkedAt: '2026-12-01T00:00:00.000Z' })
  a.crash()
  await health.refresh()
  t.match(health.status('a'), { reachable: false, arch: 'aarch64', lastError: /fake engine a is down/ })
  a.restore()
  await health.refresh()
  t.match(health.status('a'), { reachable: true, lastError: /is down/ }, 'reachable again, the last error still shown')
  health.forget('a')
  t.equal(health.status('a'), undefined)
})

t.test('a probe is bounded; settle waits only for engines never heard from', async (t) => {
  // AbortSignal.timeout does not keep the process alive; a server has its sockets to.
  const alive = setInterval(() => undefined, 1000)
  t.teardown(() => clearInterval(alive))
  const slow = new SlowEngine({ name: 'slow', workdir: () => '/x' })
  const health = new EngineHealth({ registry: new EngineRegistry([slow]), timeoutMs: 200, maxAgeMs: 0, now: () => new Date() })
  let started = Date.now()
  await health.settle()
  t.ok(Date.now() - started >= 150, 'the first settle waits for the first probe')
  t.match(health.status('slow'), { reachable: false, lastError: /did not answer in time/ })
  started = Date.now()
  await health.settle()
  t.ok(Date.now() - started < 100, `later ones answer with what is known (${Date.now() - started} ms) while a round runs`)
  slow.release()
  await health.refresh()
  t.match(health.status('slow'), { reachable: true, version: 'slow-1' })
})

t.test('confirm asks one engine now, whatever was known', async (t) => {
  const a = new FakeExecutor({ name: 'a', workdir: () => '/x' })
  const health = new EngineHealth({ registry: new EngineRegistry([a]), timeoutMs: 1000, now: () => new Date() })
  await health.refresh()
  a.crash()
  t.equal(health.status('a')?.reachable, true, 'what was known a moment ago')
  t.equal(await health.confirm('a'), false, 'what is true now')
  t.equal(health.status('a')?.reachable, false)
  t.equal(await health.confirm('nope'), false)
})
