import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { isTerminal } from '../builds/build-state.js'
import { errors } from '../errors.js'
import { sendTagged } from './etag.js'
import { Build, BuildList, BuildParams, BuildRequest, BuildState } from './schemas/build.js'
import { errorResponses, NotModified, StreamName } from './schemas/common.js'

const security = [{ bearerAuth: [] }]
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,255}$/

/** One key, well formed; node joins a repeated header with ", ", so a comma means two. */
function idempotencyKey (request: FastifyRequest): string | undefined {
  const value = request.headers['idempotency-key']
  if (value === undefined) return undefined
  const count = request.raw.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'idempotency-key').length
  if (count > 1 || Array.isArray(value)) throw errors.invalidIdempotencyKey('was sent more than once')
  if (!IDEMPOTENCY_KEY.test(value)) throw errors.invalidIdempotencyKey('is malformed')
  return value
}

const builds: FastifyPluginAsyncZod = async (app) => {
  const perMinute = app.core.config.http.submitsPerMinute
  app.post('/v1/streams/:stream/builds', {
    config: { access: 'submit', ...(perMinute > 0 ? { rateLimit: { max: perMinute, timeWindow: 60_000 } } : {}) },
    schema: {
      tags: ['builds'],
      operationId: 'submitBuild',
      summary: 'Submit a build of a stream',
      description: 'Answers 202 at once; the build is queued. With an Idempotency-Key, the same key and body ' +
        'return the same build, and the same key with another body is refused (422). 503 with Retry-After ' +
        'while free space on the data directory or the local store is below the server\'s threshold. ' +
        '429 with Retry-After beyond `http.submitsPerMinute` per token (x-ratelimit-* headers say where a caller stands).',
      security,
      params: z.object({ stream: StreamName }),
      // Checked by idempotencyKey() for its own error code; the pattern is stated for clients.
      headers: z.object({
        'idempotency-key': z.string().optional().meta({
          description: 'makes retries safe: the same key and body replay the first answer', pattern: IDEMPOTENCY_KEY.source
        })
      }),
      body: BuildRequest.optional(),
      response: { 202: Build, ...errorResponses(400, 401, 403, 404, 413, 415, 422, 429, 503) }
    }
  }, async (request, reply) => {
    const body = request.body ?? {}
    const { build, replayed } = await app.core.builds.submit(request.params.stream, {
      force: body.force ?? false,
      skipPrune: body.skipPrune ?? false,
      version: body.version,
      commit: body.commit,
      platforms: body.platforms
    }, { idempotencyKey: idempotencyKey(request), clientScope: request.clientScope })
    if (replayed) reply.header('idempotent-replayed', 'true')
    return reply.code(202).header('location', `/v1/builds/${build.id}`).send(build)
  })

  app.get('/v1/builds', {
    config: { access: 'read' },
    schema: {
      tags: ['builds'],
      operationId: 'listBuilds',
      summary: 'List builds, newest first',
      description: 'Keyset-paginated: pass `nextCursor` as `cursor` for the next, older page. Answers with an ETag; ' +
        '`If-None-Match` with it gives 304 while nothing changed.',
      security,
      querystring: z.strictObject({
        stream: StreamName.optional(),
        state: BuildState.optional(),
        limit: z.coerce.number().int().min(1).max(500).default(50),
        cursor: z.string().max(200).optional()
      }),
      response: { 200: BuildList, 304: NotModified, ...errorResponses(400, 401, 403) }
    }
  }, async (request, reply) => sendTagged(request, reply, await app.core.builds.list(request.query)))

  app.get('/v1/builds/:id', {
    config: { access: 'read' },
    schema: {
      tags: ['builds'],
      operationId: 'getBuild',
      summary: 'Get a build',
      description: 'Poll with `If-None-Match: <the ETag of the last answer>`: 304 and no body while nothing changed.',
      security,
      params: BuildParams,
      response: { 200: Build, 304: NotModified, ...errorResponses(400, 401, 403, 404) }
    }
  }, (request, reply) => {
    // A finished build, the one CI fleets poll, is answered without a promise.
    const finished = app.core.builds.finished(request.params.id)
    if (finished !== undefined) {
      sendTagged(request, reply, finished, true)
      return
    }
    return app.core.builds.get(request.params.id).then((build) => { sendTagged(request, reply, build, isTerminal(build.state)) })
  })

  app.post('/v1/builds/:id/cancel', {
    config: { access: 'submit' },
    schema: {
      tags: ['builds'],
      operationId: 'cancelBuild',
      summary: 'Cancel a build',
      description: 'Idempotent. A queued build is cancelled at once; a running one is stopped (SIGTERM, then ' +
        'SIGKILL after the grace period) and ends `cancelled`; a finished build is returned unchanged.',
      security,
      params: BuildParams,
      response: { 200: Build, ...errorResponses(400, 401, 403, 404) }
    }
  }, async (request) => app.core.builds.cancel(request.params.id))

  app.get('/v1/builds/:id/meta.json', {
    config: { access: 'read' },
    schema: {
      tags: ['builds'],
      operationId: 'getBuildMeta',
      summary: 'The cosa meta.json of the build, verbatim',
      description: 'The bytes the build container posted, once the build has a result; 404 before.',
      security,
      params: BuildParams,
      response: {
        200: z.record(z.string(), z.unknown()).meta({ description: 'cosa meta.json (see cosa\'s schema v1.json)' }),
        ...errorResponses(400, 401, 403, 404)
      }
    }
  }, async (request, reply) => {
    const meta = await app.core.builds.meta(request.params.id)
    // A string body goes out as stored; serializing would reformat it.
    return reply.type('application/json').send(meta as unknown as Record<string, unknown>)
  })
}

export default builds
