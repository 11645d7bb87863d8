import { createServer, type Server } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Registry } from 'prom-client'
import type { Metrics } from '../metrics/metrics.js'
import { z } from 'zod'
import { errorResponses } from './schemas/common.js'

// GET /metrics in Prometheus' text format, behind a read token like every
// read; and, when `metrics.port` is set, on a listener of its own without
// one, as osbuild-composer serves its metrics on a port of their own, so a
// Prometheus on the host needs no API token. Every answer of the API is
// observed here by method, route template (never the path: ids are not
// labels) and status.

async function serveAlone (registry: Registry, host: string, port: number) {
  const server = createServer((request, response) => {
    if (request.url !== '/metrics' || (request.method !== 'GET' && request.method !== 'HEAD')) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n')
      return
    }
    registry.metrics().then((text) => {
      response.writeHead(200, { 'content-type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text)
    }, (err: Error) => {
      response.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${err.message}\n`)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  return server
}

/** An onResponse hook that counts each answer under `route`, a route template bound once. */
export function answerObserver (metrics: Metrics, route: string) {
  const answered = metrics.answers(route)
  return function observe (request: FastifyRequest, reply: FastifyReply, done: () => void) {
    answered(request.method, reply.statusCode, reply.elapsedTime / 1000)
    done()
  }
}

/**
 * Observes every answer by route template. Registered before any route, so
 * that each route, /docs and /openapi.json included, is seen being added.
 */
export const observeAnswers = fp(async function observeAnswers (app: FastifyInstance) {
  const { metrics } = app.core
  // The route template is known when a route is added: each route observes
  // its own answers with it, rather than rebuilding request.routeOptions (a
  // fresh object at every access) on every request. Answers no route took
  // are observed by the not-found handler (app.ts), not by a global hook
  // that every request would run.
  app.addHook('onRoute', (route) => {
    route.onResponse = [answerObserver(metrics, route.url), ...[route.onResponse ?? []].flat()] as typeof route.onResponse
  })
}, { name: 'observe-answers', dependencies: ['core'] })

export default fp(async function metrics (app: FastifyInstance) {
  const { metrics, config } = app.core
  app.get('/metrics', {
    config: { access: 'read' },
    schema: {
      tags: ['health'],
      operationId: 'getMetrics',
      summary: 'Prometheus metrics',
      description: 'The Prometheus text exposition format (docs/metrics.md): builds by state and reason, queue and ' +
        'running gauges per stream, build and queue-wait durations, publishing, the engine, HTTP answers, and the ' +
        'Node.js process. `metrics.port` serves the same without a token on a listener of its own.',
      security: [{ bearerAuth: [] }],
      response: { 200: z.string().meta({ description: 'Prometheus text format 0.0.4' }), ...errorResponses(401, 403) }
    }
  }, async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()))

  let alone: Server | undefined
  const { port, host } = config.metrics
  if (port !== undefined) {
    app.addHook('onReady', async () => {
      alone = await serveAlone(metrics.registry, host, port)
      app.log.info({ url: `http://${host}:${(alone.address() as { port: number }).port}/metrics` }, 'metrics listening')
    })
    app.addHook('onClose', async () => {
      if (alone) await new Promise((resolve) => alone!.close(resolve))
    })
  }
}, { name: 'metrics' })
