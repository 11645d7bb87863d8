import { z } from 'zod'
import { eventTypes } from '../../builds/build-event.js'
import { StreamName, Timestamp } from './common.js'

export const WebhookName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/,
  'webhook names are 1-63 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit')

export const WebhookInput = z.strictObject({
  url: z.string().min(1).max(2048).meta({
    description: 'where deliveries are POSTed: https (http only where `webhooks.schemes` allows it), a public host ' +
      'unless `webhooks.allowPrivateHosts`, under a `webhooks.allowedPrefixes` entry when there are any'
  }),
  events: z.array(z.enum(eventTypes)).min(1).max(eventTypes.length).refine((a) => new Set(a).size === a.length, 'events must not repeat')
    .meta({ description: 'the event types to deliver' }),
  streams: z.array(StreamName).max(100).optional()
    .meta({ description: 'deliver only these streams\' events; absent or empty: every stream' })
}).meta({ id: 'WebhookRegistration' })

export const Webhook = z.object({
  name: z.string(),
  url: z.string(),
  events: z.array(z.enum(eventTypes)),
  streams: z.array(z.string()),
  enabled: z.boolean().meta({ description: 'false once a receiver answered 410 Gone; a PUT enables it again' }),
  disabledReason: z.string().optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  secret: z.string().optional().meta({
    description: 'the signing secret (`whsec_…`): only in the answer that created it or rotated it (?rotateSecret=true)'
  })
}).meta({ id: 'Webhook' })

export const WebhookList = z.object({ webhooks: z.array(Webhook) })

export const Delivery = z.object({
  id: z.string().meta({ description: 'the `webhook-id` header: the same on every attempt and redelivery' }),
  webhook: z.string(),
  eventSeq: z.number().int().meta({ description: 'the event\'s sequence number (GET /v1/events `id:`, the CloudEvent `id`)' }),
  type: z.enum(eventTypes),
  buildId: z.string(),
  state: z.enum(['pending', 'delivered', 'failed']),
  createdAt: Timestamp,
  nextAttemptAt: Timestamp.optional().meta({ description: 'while pending: when it is sent next' }),
  attempts: z.array(z.object({
    at: Timestamp,
    statusCode: z.number().int().optional().meta({ description: 'the receiver\'s answer; absent when there was none' }),
    durationMs: z.number().int(),
    error: z.string().optional().meta({ description: 'why there was no answer: refused by the URL policy, connection error, timeout' })
  }))
}).meta({ id: 'WebhookDelivery' })

export const DeliveryList = z.object({ deliveries: z.array(Delivery) })
