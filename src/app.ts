import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { jsonSchemaTransform, validatorCompiler } from 'fastify-type-provider-zod'
import core, { type CoreOptions } from './core.js'
import { errors } from './errors.js'
import { parseJson } from './http/json-body.js'
import artifacts from './http/artifacts.js'
import auth from './http/auth.js'
import builds from './http/builds.js'
import dashboard from './http/dashboard.js'
import engines from './http/engines.js'
import errorHandler from './http/error-handler.js'
import health from './http/health.js'
import whoami from './http/whoami.js'
import logs from './http/logs.js'
import metrics, { answerObserver, observeAnswers } from './http/metrics.js'
import events from './http/events.js'
import { transformObject } from './http/openapi.js'
import { serializerCompiler } from './http/serializer.js'
import requestLog from './http/request-log.js'
import results from './http/results.js'
import streams from './http/streams.js'
import { VERSION } from './version.js'
import webhooks from './http/webhooks.js'

// The application as a plugin: server.ts listens with it, tests inject into it.

export const OPENAPI_INFO = {
  title: 'cosa-buildd',
  version: VERSION,
  description: 'Builds OSTree-based operating systems with coreos-assembler (cosa) in containers. ' +
    'CI pipelines submit builds for a stream (a config repository and branch) and follow them to a final state: ' +
    '`succeeded` (a new cosa build), `unchanged` (inputs unchanged, no new build), `failed` (with a reason) ' +
    'or `cancelled`.'
}

async function app (fastify: FastifyInstance, opts: CoreOptions) {
  fastify.setValidatorCompiler(validatorCompiler)
  fastify.setSerializerCompiler(serializerCompiler)
  // Every body this API takes is JSON; anything else is a 415, not a 400.
  fastify.removeContentTypeParser('text/plain')
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJson(body as string))
    } catch (err) {
      done(err as Error, undefined)
    }
  })

  await fastify.register(requestLog)
  await fastify.register(core, opts)
  await fastify.register(observeAnswers)
  await fastify.register(errorHandler, { notFoundOnResponse: [answerObserver(fastify.core.metrics, '(unmatched)')] })
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: OPENAPI_INFO,
      // Relative: the document describes the server that serves it, wherever that is.
      servers: [{ url: '/', description: 'the server that serves this document' }],
      tags: [
        { name: 'streams', description: 'Config repositories and how to build them' },
        { name: 'builds', description: 'Build requests, their state, logs and results' },
        { name: 'artifacts', description: 'Published builds: downloads, cosa\'s store layout, pins' },
        { name: 'events', description: 'Server-Sent Events of every build change' },
        { name: 'webhooks', description: 'Signed HTTP deliveries of build events (admin)' },
        { name: 'engines', description: 'The Docker engines builds run on: add, drain, remove (admin)' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'auth', description: 'What the caller\'s token may do' }
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'read, submit or admin token' },
          buildToken: { type: 'http', scheme: 'bearer', description: 'the token minted for one build\'s container' },
          eventToken: { type: 'apiKey', in: 'query', name: 'token', description: 'a short-lived token from POST /v1/event-tokens; GET /v1/events only' }
        }
      }
    },
    transform: jsonSchemaTransform,
    transformObject
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs' })
  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())

  await fastify.register(auth, { config: opts.config })
  // After auth (preHandler), so that the key is the caller's token, not an address a proxy may share.
  await fastify.register(rateLimit, {
    global: false,
    hook: 'preHandler',
    keyGenerator: (request) => request.clientScope === 'anonymous' ? request.ip : request.clientScope,
    errorResponseBuilder: (_request, context) => errors.rateLimited(context.max, Math.ceil(context.ttl / 1000))
  })
  await fastify.register(health)
  await fastify.register(whoami)
  await fastify.register(metrics)
  await fastify.register(streams)
  await fastify.register(builds)
  await fastify.register(logs)
  await fastify.register(events)
  await fastify.register(results)
  await fastify.register(artifacts)
  await fastify.register(webhooks)
  await fastify.register(engines)
  await fastify.register(dashboard)
}

export default fp(app, { name: 'cosa-buildd' })
