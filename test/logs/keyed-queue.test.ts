import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { KeyedQueue } from '../../src/logs/keyed-queue.js'

t.test('steps of one key run one at a time in order; other keys do not wait; a failure does not stop the next', async (t) => {
  const queue = new KeyedQueue()
  const seen: string[] = []
  const step = (name: string, ms: number, fail = false) => async () => {
    seen.push(`${name} start`)
    await sleep(ms)
    seen.push(`${name} end`)
    if (fail) throw new Error(name)
  }
  const runs = [
    queue.run('a', step('a1', 30, true)),
    queue.run('a', step('a2', 1)),
    queue.run('b', step('b1', 5))
  ]
  const results = await Promise.allSettled(runs)
  t.same(results.map((r) => r.status), ['rejected', 'fulfilled', 'fulfilled'], 'the failure reaches its own caller alone')
  t.same(seen, ['a1 start', 'b1 start', 'b1 end', 'a1 end', 'a2 start', 'a2 end'])
})
