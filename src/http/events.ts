import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { eventTypes } from '../builds/build-event.js'
import { errors } from '../errors.js'
import { Timestamp, errorResponses, StreamName } from './schemas/common.js'

// The event stream (docs/events.md) and the short-lived tokens that let a
// browser's EventSource, which cannot send headers, open it.

const SEQ = /^\d{1,15}$/

const EventToken = z.object({
  token: z.string().meta({ description: 'pass as ?token= to GET /v1/events, and nowhere else' }),
  expiresAt: Timestamp
}).meta({ id: 'EventToken' })

const events: FastifyPluginAsyncZod = async (app) => {
  app.post('/v1/event-tokens', {
    config: { access: 'read' },
    schema: {
      tags: ['events'],
      operationId: 'createEventToken',
      summary: 'Mint a short-lived token for the event stream',
      description: 'For browsers\' EventSource, which cannot send an Authorization header: a read-only token, ' +
        'valid for `events.tokenTtlSeconds` (default 5 minutes), accepted only as `?token=` on GET /v1/events. ' +
        'Never put a long-lived token in a URL.',
      security: [{ bearerAuth: [] }],
      response: { 201: EventToken, ...errorResponses(401, 403) }
    }
  }, async (_request, reply) => reply.code(201).header('cache-control', 'no-store').send(app.core.eventTokens.mint()))

  app.get('/v1/events', {
    config: { access: 'read', queryToken: true },
    schema: {
      tags: ['events'],
      operationId: 'streamEvents',
      summary: 'Server-Sent Events: every change of every build',
      description: 'text/event-stream. Each event has `id:` (the outbox sequence number), `event:` (one of ' +
        `${eventTypes.join(', ')}) and \`data:\` {seq, type, buildId, stream, time, build}. Resume with the ` +
        '`Last-Event-ID` header (EventSource sends it) or `?since=`: no event is missed or repeated, across restarts ' +
        'too. Without either, the stream starts with the next event; `since=0` replays all. A comment line every ' +
        '`events.heartbeatSeconds` (15 s) keeps it open through proxies.',
      security: [{ bearerAuth: [] }, { eventToken: [] }],
      headers: z.object({
        'last-event-id': z.string().optional().meta({ description: 'the id of the last event received', pattern: SEQ.source })
      }),
      querystring: z.strictObject({
        since: z.string().regex(SEQ, 'since must be an event id (a non-negative integer)').optional()
          .meta({ description: 'events after this id; Last-Event-ID wins when both are sent' }),
        stream: StreamName.optional().meta({ description: 'only this stream\'s builds' }),
        build: z.string().min(1).max(64).optional().meta({ description: 'only this build' }),
        token: z.string().max(200).optional().meta({ description: 'a token from POST /v1/event-tokens (for EventSource)' })
      }),
      response: { 200: z.string().meta({ description: 'the event stream' }), ...errorResponses(400, 401, 403) }
    }
  }, async (request, reply) => {
    const { since, stream, build } = request.query
    const resume = request.headers['last-event-id'] ?? since
    if (resume !== undefined && !SEQ.test(resume)) throw errors.invalidRequest('headers/last-event-id: not an event id')
    // A HEAD gets the headers alone: a feed would run until the client left.
    if (request.method === 'HEAD') return reply.type('text/event-stream; charset=utf-8').header('cache-control', 'no-store').send('')
    const from = resume === undefined ? await app.core.store.events.latestEventSeq() : Number(resume)
    const aborted = new AbortController()
    request.raw.on('close', () => aborted.abort())
    // Ended by a shutdown: its connection is closed too rather than kept alive (as the log's).
    reply.raw.once('finish', () => { if (app.core.closing.aborted) request.raw.socket?.end?.() })
    const body = app.core.events.open(from, { stream, build }, AbortSignal.any([aborted.signal, app.core.closing]))
    return reply
      .type('text/event-stream; charset=utf-8')
      .header('cache-control', 'no-store')
      // nginx buffers answers unless told not to; an event stream must not wait.
      .header('x-accel-buffering', 'no')
      .send(body as unknown as string)
  })
}

export default events
