import { join } from 'node:path'
import t from 'tap'
import { SqliteStore } from '../../src/store/sqlite-store.js'
import { SqliteWebhookStore } from '../../src/store/sqlite-webhook-store.js'
import type { NewDelivery, WebhookRecord } from '../../src/webhooks/model.js'
import { tempDir } from '../helpers.js'

// The webhook store on a real SQLite file beside the builds' store: the
// cursor moves with its deliveries or not at all, and reopening migrates
// nothing twice.

const AT = '2026-11-30T17:00:00.000Z'

const hook = (name: string): WebhookRecord => ({
  name, url: 'https://hooks.example.com/x', events: ['build.finished'], streams: [], enabled: true,
  createdAt: AT, updatedAt: AT, secret: 'whsec_AAAA', cursor: 0
})

const delivery = (seq: number): NewDelivery =>
  ({ id: `msg_${seq}`, eventSeq: seq, type: 'build.finished', buildId: `b${seq}`, body: '{}' })

t.test('a stale cursor writes nothing: no event is delivered twice', async (t) => {
  const db = join(await tempDir(t), 'db.sqlite')
  const builds = new SqliteStore(db)
  const store = new SqliteWebhookStore(db)
  t.teardown(async () => { await store.close(); await builds.close() })
  await store.insertWebhook(hook('a'))
  t.equal(await store.enqueue('a', 0, 2, [delivery(1), delivery(2)], AT), true)
  t.equal(await store.enqueue('a', 0, 2, [delivery(1), delivery(2)], AT), false, 'the same move again is refused')
  t.equal((await store.getWebhook('a'))!.cursor, 2)
  t.same((await store.listDeliveries('a', 10)).map((d) => d.eventSeq), [2, 1])
  t.same((await store.dueDeliveries(AT, 10, ['msg_1'])).map((d) => d.id), ['msg_2'], 'in-flight ones are skipped')

  await store.disableWebhook('a', 'gone', AT)
  t.equal(await store.enqueue('a', 2, 3, [delivery(3)], AT), false, 'a disabled webhook takes no new deliveries')
  t.same(await store.dueDeliveries(AT, 10, []), [], 'nor sends its pending ones')
  t.equal(await store.nextDueAt(), undefined)
})

t.test('reopening the database keeps webhooks and migrates once', async (t) => {
  const db = join(await tempDir(t), 'db.sqlite')
  const first = new SqliteWebhookStore(db)
  await first.insertWebhook(hook('kept'))
  await first.close()
  const again = new SqliteWebhookStore(db)
  t.teardown(() => again.close())
  t.same((await again.listWebhooks()).map((w) => w.name), ['kept'])
  t.equal(await again.deleteWebhook('kept'), true)
  t.equal(await again.deleteWebhook('kept'), false)
})
