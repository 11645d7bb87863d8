import type { ServerResponse } from 'node:http'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { BOOT_TEST_FILES } from '../logs/log-store.js'
import { BuildParams } from './schemas/build.js'
import { errorResponses } from './schemas/common.js'

/**
 * Sends the status line and headers as soon as fastify pipes the body in
 * (it sets them just before), rather than with the body's first byte.
 */
const flushHeadersOnPipe = (res: ServerResponse) => res.once('pipe', () => res.flushHeaders())

const logs: FastifyPluginAsyncZod = async (app) => {
  app.get('/v1/builds/:id/log', {
    config: { access: 'read' },
    schema: {
      tags: ['builds'],
      operationId: 'getBuildLog',
      summary: 'The build log (text/plain)',
      description: 'Control sequences are stripped. `offset` resumes at a byte offset (the `X-Log-Size` of an ' +
        'earlier answer, or the bytes received so far); `follow=true` streams until the build has ended. A follow ' +
        'answers its headers at once, even while the build is queued; it may then be idle for as long as the build ' +
        'prints nothing (a queued build, a quiet step), so a proxy in front needs a read timeout that long, or the ' +
        'client resumes with `offset` (docs/api.md).',
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
    const follow = request.query.follow === 'true'
    const { size, body } = await app.core.builds.log(request.params.id, request.query.offset,
      follow, AbortSignal.any([aborted.signal, app.core.closing]))
    // A follower learns at once that it is connected: node sends the headers
    // with the first byte of body, and a queued build has none for a while.
    if (follow) flushHeadersOnPipe(reply.raw)
    return reply
      .type('text/plain; charset=utf-8')
      .header('x-log-size', String(size))
      .header('cache-control', 'no-store')
      .header('x-accel-buffering', 'no')
      .send(body as unknown as string)
  })

  app.get('/v1/builds/:id/boot-test/:file', {
    config: { access: 'read' },
    schema: {
      tags: ['builds'],
      operationId: 'getBootTestFile',
      summary: 'The boot test\'s serial console or journal (text/plain)',
      description: 'What `cosa kola run basic` kept of a new build of a stream with bootTest enabled: the guest\'s ' +
        'serial console as received, and `journalctl -b`. Kept with the build\'s log (also when a gated build ' +
        'published nothing) and removed with it (retention.logDays).',
      security: [{ bearerAuth: [] }],
      params: BuildParams.extend({ file: z.enum(BOOT_TEST_FILES) }),
      response: {
        200: z.string().meta({ description: 'text' }),
        ...errorResponses(400, 401, 403, 404)
      }
    }
  }, async (request, reply) => {
    const { size, body } = await app.core.builds.bootTestFile(request.params.id, request.params.file)
    return reply.type('text/plain; charset=utf-8').header('content-length', String(size)).send(body as unknown as string)
  })
}

export default logs
