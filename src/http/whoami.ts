import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { hasTokens } from '../config.js'
import { errorResponses } from './schemas/common.js'

// What the caller's token may do, for clients that show only what they may
// use (the dashboard's Cancel and Pin buttons) rather than try and fail.

const Whoami = z.object({
  role: z.enum(['read', 'submit', 'admin', 'open']).meta({
    description: 'the rank of the token sent; `open` when the server has no tokens and every caller may do everything'
  })
}).meta({ id: 'Whoami' })

const whoami: FastifyPluginAsyncZod = async (app) => {
  const open = !hasTokens(app.core.config)
  app.get('/v1/whoami', {
    config: { access: 'read' },
    schema: {
      tags: ['auth'],
      operationId: 'getWhoami',
      summary: 'What the caller\'s token may do',
      description: 'The rank of the bearer token sent: read < submit < admin; `open` on a server with no tokens. ' +
        '401 without a valid token when the server has tokens.',
      security: [{ bearerAuth: [] }],
      response: { 200: Whoami, ...errorResponses(401) }
    }
  }, async (request, reply) => reply.header('cache-control', 'no-store').send({ role: open ? 'open' : request.role ?? 'read' }))
}

export default whoami
