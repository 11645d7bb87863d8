import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { BuildParams } from './schemas/build.js'
import { errorResponses } from './schemas/common.js'

const logs: FastifyPluginAsyncZod = async (app) => {
  app.get('/v1/builds/:id/log', {
    config: { access: 'read' },
    schema: {
      tags: ['builds'],
      operationId: 'getBuildLog',
      summary: 'The build log (text/plain)',
      description: 'Control sequences are stripped. `offset` resumes at a byte offset (the `X-Log-Size` of an ' +
        'earlier answer, or the bytes received so far); `follow=true` streams until the build has ended.',
      security: [{ bearerAuth: [] }],
      params: BuildParams,
      querystring: z.strictObject({
        offset: z.coerce.number().int().min(0).default(0),
        follow: z.enum(['true', 'false']).default('false')
      }),
      response: {
        200: z.string().meta({ description: 'log text' }),
        ...errorResponses(400, 401, 403, 404)
      }
    }
  }, async (request, reply) => {
    const aborted = new AbortController()
    request.raw.on('close', () => aborted.abort())
    // A follower ends at shutdown too (it resumes with ?offset=), or it would
    // hold the server open; its connection, idle only after the close began,
    // is ended as well rather than kept alive.
    reply.raw.once('finish', () => { if (app.core.closing.aborted) request.raw.socket.end() })
    const { size, body } = await app.core.builds.log(request.params.id, request.query.offset,
      request.query.follow === 'true', AbortSignal.any([aborted.signal, app.core.closing]))
    return reply
      .type('text/plain; charset=utf-8')
      .header('x-log-size', String(size))
      .header('cache-control', 'no-store')
      .send(body as unknown as string)
  })
}

export default logs
