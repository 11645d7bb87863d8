import type { BuildEvent } from '../builds/build-event.js'
import type { Database, WebhookRepository } from '../store/repositories.js'
import { toDelivery } from './cloud-event.js'
import type { WebhookRecord } from './model.js'

// Turns outbox events into delivery rows: for each enabled webhook, the
// events after its cursor that it wants, written with the cursor's move in
// one transaction (WebhookRepository.enqueue). A crash before the commit leaves
// the cursor where it was, so the same events are considered again.

const PAGE = 500

const wants = (w: WebhookRecord, e: BuildEvent) =>
  w.events.includes(e.type) && (w.streams.length === 0 || w.streams.includes(e.stream))

export async function fanOut (store: Database, webhooks: WebhookRepository, at: string) {
  let written = 0
  for (const webhook of await webhooks.listWebhooks()) {
    if (!webhook.enabled) continue
    let cursor = webhook.cursor
    for (;;) {
      const page = await store.events.eventsAfter(cursor, { limit: PAGE })
      if (page.length === 0) break
      const deliveries = page.filter((e) => wants(webhook, e)).map(toDelivery)
      const to = page.at(-1)!.seq
      // Lost a race (changed or disabled meanwhile): the next pass reads it afresh.
      if (!await webhooks.enqueue(webhook.name, cursor, to, deliveries, at)) break
      written += deliveries.length
      cursor = to
      if (page.length < PAGE) break
    }
  }
  return written
}
