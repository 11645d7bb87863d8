import t from 'tap'
import { RETRY_SECONDS } from '../../src/config.js'
import { retryDelayMs } from '../../src/webhooks/webhook-dispatcher.js'

// The retry schedule alone; test/http/webhooks.test.ts and
// webhook-restart.test.ts run the dispatcher against real receivers.

t.test('the default schedule retries for about 3 days, then gives up', async (t) => {
  const middle = () => 0.5
  const total = RETRY_SECONDS.reduce((sum, _s, i) => sum + retryDelayMs(RETRY_SECONDS, i + 1, middle)!, 0)
  t.ok(total > 2.9 * 86_400_000 && total < 3.1 * 86_400_000, `${(total / 3_600_000).toFixed(1)} h of retries`)
  t.equal(retryDelayMs(RETRY_SECONDS, 1, middle), 5000, 'the first retry comes after 5 s')
  t.equal(retryDelayMs(RETRY_SECONDS, RETRY_SECONDS.length + 1, middle), undefined, 'no retry after the last')
})

t.test('jitter spreads a retry by ±20 %', async (t) => {
  t.equal(retryDelayMs([10], 1, () => 0), 8000)
  t.equal(retryDelayMs([10], 1, () => 1), 12_000)
  const seen = new Set(Array.from({ length: 50 }, () => retryDelayMs([10], 1)))
  t.ok(seen.size > 10, 'Math.random by default: retries of many deliveries do not line up')
})
