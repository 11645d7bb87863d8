import type { Attempt, AttemptOutcome, Delivery, DueDelivery, NewDelivery, WebhookInput, WebhookRecord } from '../webhooks/model.js'

// Webhooks, their cursors into the outbox, and their deliveries. Apart from
// Store (builds) because it is a job of its own; async for the same reason.

export interface WebhookStore {
  getWebhook(name: string): Promise<WebhookRecord | undefined>
  listWebhooks(): Promise<WebhookRecord[]>
  insertWebhook(webhook: WebhookRecord): Promise<void>
  /** Changes what a webhook is and enables it; `secret` replaces the secret, `cursor` moves it (re-enabling). */
  updateWebhook(name: string, input: WebhookInput, at: string, change: { secret?: string, cursor?: number }): Promise<WebhookRecord | undefined>
  disableWebhook(name: string, reason: string, at: string): Promise<void>
  /** Removes the webhook and its deliveries. */
  deleteWebhook(name: string): Promise<boolean>

  /**
   * Moves a webhook's cursor from `from` to `to` and writes the deliveries of
   * the events in between, in one transaction: false (nothing written) when
   * the cursor was no longer `from`. So no event is skipped or delivered twice.
   */
  enqueue(name: string, from: number, to: number, deliveries: NewDelivery[], at: string): Promise<boolean>
  /** Pending deliveries of enabled webhooks due by `now`, oldest first, not those in `skip`. */
  dueDeliveries(now: string, limit: number, skip: string[]): Promise<DueDelivery[]>
  /** When the next pending delivery of an enabled webhook is due. */
  nextDueAt(): Promise<string | undefined>
  /** When the oldest delivery still pending (of an enabled webhook) was made: how far behind receivers are. */
  oldestPendingAt(): Promise<string | undefined>
  recordAttempt(id: string, attempt: Attempt, outcome: AttemptOutcome): Promise<void>
  /** Newest first. */
  listDeliveries(webhook: string, limit: number): Promise<Delivery[]>
  getDelivery(webhook: string, id: string): Promise<Delivery | undefined>
  /** Makes a delivery pending and due at `at`, its retry schedule from the start; its attempts stay. */
  redeliver(webhook: string, id: string, at: string): Promise<Delivery | undefined>
}
