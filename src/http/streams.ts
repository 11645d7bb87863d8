import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { errorResponses, NotModified, StreamName } from './schemas/common.js'
import { Stream, StreamInput, StreamList } from './schemas/stream.js'

const security = [{ bearerAuth: [] }]

const streams: FastifyPluginAsyncZod = async (app) => {
  app.put('/v1/streams/:stream', {
    config: { access: 'admin' },
    schema: {
      tags: ['streams'],
      summary: 'Register or update a stream',
      security,
      params: z.object({ stream: StreamName }),
      body: StreamInput,
      response: { 200: Stream, 201: Stream, ...errorResponses(400, 401, 403, 422) }
    }
  }, async (request, reply) => {
    const { stream, created } = await app.core.streams.put(request.params.stream, request.body)
    return reply.code(created ? 201 : 200).send(await app.core.streams.get(stream.name))
  })

  app.get('/v1/streams', {
    config: { access: 'read' },
    schema: {
      tags: ['streams'],
      summary: 'List streams with their latest builds',
      security,
      response: { 200: StreamList, ...errorResponses(401, 403) }
    }
  }, async () => ({ streams: await app.core.streams.list() }))

  app.get('/v1/streams/:stream', {
    config: { access: 'read', etag: true },
    schema: {
      tags: ['streams'],
      summary: 'Get a stream and its latest build',
      security,
      params: z.object({ stream: StreamName }),
      response: { 200: Stream, 304: NotModified, ...errorResponses(400, 401, 403, 404) }
    }
  }, async (request) => app.core.streams.get(request.params.stream))
}

export default streams
