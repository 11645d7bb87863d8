import t from 'tap'
import { KeyedQueue } from '../../src/logs/keyed-queue.js'

t.test('steps of one key run one at a time in order; other keys do not wait; a failure does not stop the next', async (t) => {
  const queue = new KeyedQueue()
  const seen: string[] = []
  let release = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const runs = [
    queue.run('a', async () => { seen.push('a1 start'); await held; seen.push('a1 end'); throw new Error('a1') }),
    queue.run('a', async () => { seen.push('a2'); return 'a2 result' }),
    queue.run('b', async () => { seen.push('b1') })
  ]
  // b1 runs while a1 is held; a2 waits for a1.
  await runs[2]
  t.same(seen, ['a1 start', 'b1'], 'another key does not wait, the same key does')
  release()
  const results = await Promise.allSettled(runs)
  t.same(results.map((r) => r.status), ['rejected', 'fulfilled', 'fulfilled'], 'the failure reaches its own caller alone')
  t.equal((results[1] as PromiseFulfilledResult<unknown>).value, 'a2 result', 'a step\'s result reaches its caller')
  t.same(seen, ['a1 start', 'b1', 'a1 end', 'a2'])
})
