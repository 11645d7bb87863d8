import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { errorResponses } from './schemas/common.js'
import { Delivery, DeliveryList, Webhook, WebhookInput, WebhookList, WebhookName } from './schemas/webhook.js'

// Admin routes for webhooks (docs/events.md). Answers never carry a
// secret except the one that created or rotated it.

const security = [{ bearerAuth: [] }]
const config = { access: 'admin' as const }
const tags = ['webhooks']
const Params = z.object({ name: WebhookName })

const webhooks: FastifyPluginAsyncZod = async (app) => {
  app.put('/v1/webhooks/:name', {
    config,
    schema: {
      tags,
      operationId: 'putWebhook',
      summary: 'Register or change a webhook',
      description: '201 with the signing secret when it created the webhook: the only time it is shown. 200 when it ' +
        'changed one: the secret stays (and is not shown) unless `rotateSecret=true`, which answers the new one. A PUT ' +
        'enables a webhook a receiver disabled with 410. The URL is checked against the server\'s policy (422 ' +
        '`BLD_WEBHOOK_URL_REFUSED`). A new webhook gets the events after its creation.',
      security,
      params: Params,
      querystring: z.strictObject({
        rotateSecret: z.enum(['true', 'false']).optional().meta({ description: 'replace the signing secret and answer the new one' })
      }),
      body: WebhookInput,
      response: { 200: Webhook, 201: Webhook, ...errorResponses(400, 401, 403, 413, 415, 422) }
    }
  }, async (request, reply) => {
    const { streams, ...rest } = request.body
    const { webhook, created } = await app.core.webhooks.put(request.params.name, { ...rest, streams: streams ?? [] },
      request.query.rotateSecret === 'true')
    return reply.code(created ? 201 : 200).header('cache-control', 'no-store').send(webhook)
  })

  app.get('/v1/webhooks', {
    config,
    schema: {
      tags,
      operationId: 'listWebhooks',
      summary: 'List webhooks',
      description: 'Every webhook, without secrets.',
      security,
      response: { 200: WebhookList, ...errorResponses(401, 403) }
    }
  }, async () => ({ webhooks: await app.core.webhooks.list() }))

  app.get('/v1/webhooks/:name', {
    config,
    schema: {
      tags,
      operationId: 'getWebhook',
      summary: 'Get a webhook',
      description: 'The webhook, without its secret.',
      security,
      params: Params,
      response: { 200: Webhook, ...errorResponses(400, 401, 403, 404) }
    }
  }, async (request) => app.core.webhooks.get(request.params.name))

  app.delete('/v1/webhooks/:name', {
    config,
    schema: {
      tags,
      operationId: 'deleteWebhook',
      summary: 'Remove a webhook',
      description: 'Removes the webhook and its deliveries; an attempt in flight ends unrecorded.',
      security,
      params: Params,
      response: { 204: z.null().meta({ description: 'removed' }), ...errorResponses(400, 401, 403, 404) }
    }
  }, async (request, reply) => {
    await app.core.webhooks.delete(request.params.name)
    return reply.code(204).send(null)
  })

  app.get('/v1/webhooks/:name/deliveries', {
    config,
    schema: {
      tags,
      operationId: 'listWebhookDeliveries',
      summary: 'A webhook\'s deliveries, newest first, with their attempts',
      description: 'Each delivery is one event for this webhook; each attempt says when, the receiver\'s status ' +
        'code, how long it took and what went wrong.',
      security,
      params: Params,
      querystring: z.strictObject({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
      response: { 200: DeliveryList, ...errorResponses(400, 401, 403, 404) }
    }
  }, async (request) => ({ deliveries: await app.core.webhooks.deliveries(request.params.name, request.query.limit) }))

  app.post('/v1/webhooks/:name/deliveries/:id/redeliver', {
    config,
    schema: {
      tags,
      operationId: 'redeliverWebhookDelivery',
      summary: 'Send a delivery again',
      description: '202: the delivery is pending and due now, with the retry schedule from its start. It is the ' +
        'same message (same `webhook-id` and body, a new timestamp and signature); its earlier attempts stay listed.',
      security,
      params: Params.extend({ id: z.string().min(1).max(64) }),
      response: { 202: Delivery, ...errorResponses(400, 401, 403, 404) }
    }
  }, async (request, reply) => reply.code(202).send(await app.core.webhooks.redeliver(request.params.name, request.params.id)))
}

export default webhooks
