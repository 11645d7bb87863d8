import type { BuildLifecycle } from '../builds/lifecycle.js'
import { webhookUrlPolicy, type Config } from '../config.js'
import type { Logger } from '../logger.js'
import type { Database } from '../store/repositories.js'
import type { DeliveryResult } from './model.js'
import { WebhookDispatcher } from './webhook-dispatcher.js'
import { httpSender } from './webhook-sender.js'
import { WebhookService } from './webhook-service.js'

// Webhooks wired from the configuration: the service the admin routes call, and the background
// dispatcher core.ts starts on ready and stops on close.

export interface WebhooksDeps {
  config: Config
  store: Database
  lifecycle: BuildLifecycle
  now: () => Date
  logger: Logger
  onDelivery?: ((webhook: string, result: DeliveryResult) => void) | undefined
}

export function openWebhooks (deps: WebhooksDeps) {
  const { config, store, now } = deps
  const webhooks = store.webhooks
  const policy = webhookUrlPolicy(config)
  const dispatcher = new WebhookDispatcher({
    store,
    webhooks,
    lifecycle: deps.lifecycle,
    policy,
    send: httpSender({ allowPrivateHosts: policy.allowPrivateHosts, userAgent: 'cosa-buildd webhooks' }),
    now,
    logger: deps.logger,
    mayDeliver: () => deps.lifecycle.leases.duty('webhooks'),
    ...(deps.onDelivery && { onDelivery: deps.onDelivery }),
    timeoutMs: config.webhooks.timeoutMs,
    concurrency: config.webhooks.concurrency,
    retrySeconds: config.webhooks.retrySeconds
  })
  return {
    service: new WebhookService({ store, webhooks, policy, now, wake: () => dispatcher.wake() }),
    /** Seconds since the oldest delivery still pending was made; 0 when none is. */
    lagSeconds: async () => {
      const at = await webhooks.oldestPendingAt()
      return at === undefined ? 0 : Math.max(0, (now().getTime() - Date.parse(at)) / 1000)
    },
    start: () => dispatcher.start(),
    /** Stops sending (attempts in flight stay pending). */
    close: () => dispatcher.stop()
  }
}
