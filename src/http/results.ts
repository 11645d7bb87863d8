import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { Build, BuildParams } from './schemas/build.js'
import { errorResponses } from './schemas/common.js'

const META_LIMIT = 16 * 1024 * 1024

const results: FastifyPluginAsyncZod = async (app) => {
  // meta.json is kept verbatim, so this route takes its body as text.
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: META_LIMIT }, (_req, body, done) => done(null, body))

  app.post('/v1/builds/:id/result', {
    config: { access: 'build' },
    schema: {
      tags: ['builds'],
      operationId: 'postBuildResult',
      summary: 'A build container reports its outcome',
      description: 'Called by the build container, with the token minted for that build alone. The body is ' +
        'the cosa meta.json of builds/latest; it must match cosa\'s schema, and every image it lists must ' +
        'exist in the workdir with the stated size. The token expires when the build ends (401); another ' +
        'build\'s token is 403.',
      security: [{ buildToken: [] }],
      params: BuildParams,
      querystring: z.strictObject({
        outcome: z.enum(['built', 'unchanged']),
        arch: z.string().regex(/^[a-z0-9_]{1,32}$/)
      }),
      body: z.string().meta({ description: 'cosa meta.json' }),
      response: { 200: Build, ...errorResponses(400, 401, 403, 404, 409, 413, 422) }
    }
  }, async (request) => {
    await app.core.results.accept(request.params.id, request.query.outcome, request.query.arch, request.body)
    return app.core.builds.get(request.params.id)
  })
}

export default results
