import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { errorResponses, NotModified, StreamName } from './schemas/common.js'
import { sendTagged } from './etag.js'
import { Stream, StreamInput, StreamList, StreamRegistered } from './schemas/stream.js'

const security = [{ bearerAuth: [] }]

const streams: FastifyPluginAsyncZod = async (app) => {
  app.put('/v1/streams/:stream', {
    config: { access: 'admin' },
    schema: {
      tags: ['streams'],
      operationId: 'putStream',
      summary: 'Register or update a stream',
      description: '201 when it created the stream, 200 when it replaced it. Resources and the image are checked ' +
        'against the Docker engine while it answers (422 `BLD_STREAM_UNFIT`). `warnings` says when no engine serves an ' +
        'arch of `arches` (its builds wait for one).',
      security,
      params: z.object({ stream: StreamName }),
      body: StreamInput,
      response: { 200: StreamRegistered, 201: StreamRegistered, ...errorResponses(400, 401, 403, 422) }
    }
  }, async (request, reply) => {
    const { stream, created } = await app.core.streams.put(request.params.stream, request.body)
    const warnings = await app.core.engineAdmin.archWarnings(stream.arches)
    return reply.code(created ? 201 : 200).send({ ...await app.core.streams.get(stream.name), ...(warnings.length ? { warnings } : {}) })
  })

  app.delete('/v1/streams/:stream', {
    config: { access: 'admin' },
    schema: {
      tags: ['streams'],
      operationId: 'deleteStream',
      summary: 'Delete a stream',
      description: 'Removes the stream, its cosa workdir and its config mirror. Refused (409 `BLD_STREAM_BUSY`) while ' +
        'a build of it is queued or running. Its published builds stay in the artifact store, and its builds in ' +
        'the API, unless `purge=true`, which deletes them too.',
      security,
      params: z.object({ stream: StreamName }),
      querystring: z.strictObject({ purge: z.enum(['true', 'false']).default('false') }),
      response: { 204: z.null().meta({ description: 'deleted' }), ...errorResponses(400, 401, 403, 404, 409) }
    }
  }, async (request, reply) => {
    await app.core.streamRemoval.remove(request.params.stream, request.query.purge === 'true')
    return reply.code(204).send(null)
  })

  app.get('/v1/streams', {
    config: { access: 'read' },
    schema: {
      tags: ['streams'],
      operationId: 'listStreams',
      summary: 'List streams with their latest builds',
      description: 'Every stream, each with its latest build (the one `builds/latest` points at); secrets by name only.',
      security,
      response: { 200: StreamList, ...errorResponses(401, 403) }
    }
  }, async () => ({ streams: await app.core.streams.list() }))

  app.get('/v1/streams/:stream', {
    config: { access: 'read' },
    schema: {
      tags: ['streams'],
      operationId: 'getStream',
      summary: 'Get a stream and its latest build',
      description: 'The stream\'s settings (secrets by name only) and its latest build. Answers with an ETag; ' +
        '`If-None-Match` with it gives 304 while nothing changed.',
      security,
      params: z.object({ stream: StreamName }),
      response: { 200: Stream, 304: NotModified, ...errorResponses(400, 401, 403, 404) }
    }
  }, async (request, reply) => sendTagged(request, reply, await app.core.streams.get(request.params.stream)))
}

export default streams
