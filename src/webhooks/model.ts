import type { BuildEventType } from '../builds/build-event.js'

// Webhooks as the API shows them, and their deliveries. A delivery is one
// outbox event for one webhook; its attempts are every time it was sent.

export interface WebhookInput {
  url: string
  events: BuildEventType[]
  /** Empty: every stream. */
  streams: string[]
}

export interface Webhook extends WebhookInput {
  name: string
  enabled: boolean
  /** Why the service disabled it (a receiver answered 410); a PUT enables it again. */
  disabledReason?: string | undefined
  createdAt: string
  updatedAt: string
}

/** What the store keeps beside what the API shows. */
export interface WebhookRecord extends Webhook {
  /** `whsec_` and base64: shown once, at creation or rotation. */
  secret: string
  /** The last outbox sequence number this webhook has considered. */
  cursor: number
}

export type DeliveryState = 'pending' | 'delivered' | 'failed'

export interface Attempt {
  at: string
  statusCode?: number | undefined
  durationMs: number
  error?: string | undefined
}

export interface Delivery {
  /** The Standard Webhooks `webhook-id`: the same on every attempt, so receivers can drop repeats. */
  id: string
  webhook: string
  eventSeq: number
  type: BuildEventType
  buildId: string
  state: DeliveryState
  createdAt: string
  nextAttemptAt?: string | undefined
  attempts: Attempt[]
}

/** A delivery row to write when the outbox moves on (see WebhookRepository.enqueue). */
export interface NewDelivery {
  id: string
  eventSeq: number
  type: BuildEventType
  buildId: string
  /** The CloudEvent, fixed at enqueue so that every attempt and redelivery sends the same bytes. */
  body: string
}

/** A delivery whose time has come, with what sending it needs. */
export interface DueDelivery {
  id: string
  webhook: string
  url: string
  secret: string
  body: string
  /** Failed attempts since it was enqueued or redelivered: the place in the retry schedule. */
  tries: number
}

/** How an attempt ended; `onDelivery` hears it (metrics: cosa_buildd_webhook_deliveries_total). */
export type DeliveryResult = 'delivered' | 'retrying' | 'failed' | 'gone'

/** What recording an attempt does to its delivery. */
export type AttemptOutcome =
  | { state: 'delivered' | 'failed' }
  | { state: 'pending', tries: number, nextAttemptAt: string }
