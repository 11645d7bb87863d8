import { errors } from '../errors.js'
import { configUrlRefusal, systemLookup, type Lookup, type UrlPolicy } from '../git/config-url.js'
import type { Database, WebhookRepository } from '../store/repositories.js'
import type { Webhook, WebhookInput, WebhookRecord } from './model.js'
import { newSecret } from './signature.js'

// What the admin routes do with webhooks. The secret leaves the service
// twice at most: in the answer that created it, and in the answer to a PUT
// with ?rotateSecret=true. A new webhook hears the events after its
// creation; one enabled again by a PUT after a 410 hears those after the PUT.

const shown = ({ secret: _secret, cursor: _cursor, ...webhook }: WebhookRecord): Webhook => webhook

export class WebhookService {
  readonly #store: Database
  readonly #webhooks: WebhookRepository
  readonly #policy: UrlPolicy
  readonly #lookup: Lookup
  readonly #now: () => Date
  readonly #wake: () => void

  constructor (deps: { store: Database, webhooks: WebhookRepository, policy: UrlPolicy, lookup?: Lookup, now: () => Date, wake: () => void }) {
    this.#store = deps.store
    this.#webhooks = deps.webhooks
    this.#policy = deps.policy
    this.#lookup = deps.lookup ?? systemLookup
    this.#now = deps.now
    this.#wake = deps.wake
  }

  async put (name: string, input: WebhookInput, rotateSecret: boolean) {
    const refusal = await configUrlRefusal(input.url, this.#policy, this.#lookup)
    if (refusal !== undefined) throw errors.webhookUrlRefused(refusal)
    const at = this.#now().toISOString()
    const existing = await this.#webhooks.getWebhook(name)
    if (existing === undefined) {
      const created: WebhookRecord = {
        name, ...input, enabled: true, createdAt: at, updatedAt: at, secret: newSecret(), cursor: await this.#store.events.latestEventSeq()
      }
      await this.#webhooks.insertWebhook(created)
      return { webhook: { ...shown(created), secret: created.secret }, created: true }
    }
    const secret = rotateSecret ? newSecret() : undefined
    const cursor = existing.enabled ? undefined : await this.#store.events.latestEventSeq()
    const updated = await this.#webhooks.updateWebhook(name, input, at, { ...(secret && { secret }), ...(cursor !== undefined && { cursor }) })
    if (updated === undefined) throw errors.webhookNotFound(name)
    // Deliveries held while it was disabled may go now.
    this.#wake()
    return { webhook: { ...shown(updated), ...(secret && { secret }) }, created: false }
  }

  async list () {
    return (await this.#webhooks.listWebhooks()).map(shown)
  }

  async get (name: string) {
    const webhook = await this.#webhooks.getWebhook(name)
    if (webhook === undefined) throw errors.webhookNotFound(name)
    return shown(webhook)
  }

  async delete (name: string) {
    if (!await this.#webhooks.deleteWebhook(name)) throw errors.webhookNotFound(name)
  }

  async deliveries (name: string, limit: number) {
    await this.get(name)
    return this.#webhooks.listDeliveries(name, limit)
  }

  async redeliver (name: string, id: string) {
    await this.get(name)
    const delivery = await this.#webhooks.redeliver(name, id, this.#now().toISOString())
    if (delivery === undefined) throw errors.deliveryNotFound(name, id)
    this.#wake()
    return delivery
  }
}
