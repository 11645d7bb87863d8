import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { Readable } from 'node:stream'
import { COSA_BUILD_ID } from '../cosa/meta.js'
import { errors } from '../errors.js'
import { sentType } from './error-handler.js'
import { z } from 'zod'
import { Build, BuildParams } from './schemas/build.js'
import { errorResponses } from './schemas/common.js'

const META_LIMIT = 16 * 1024 * 1024

const results: FastifyPluginAsyncZod = async (app) => {
  // meta.json is kept verbatim, so this route takes its body as text.
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: META_LIMIT }, (_req, body, done) => done(null, body))
  // An upload is streamed to disk as it arrives: its handler reads the request itself.
  app.addContentTypeParser('application/x-tar', (_req, payload, done) => done(null, payload))

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

  app.put('/v1/builds/:id/workdir', {
    config: { access: 'build', bodyType: 'application/x-tar' },
    schema: {
      tags: ['builds'],
      operationId: 'putBuildWorkdir',
      summary: 'A build container sends the files of the build it made',
      description: 'Called by a build container on an engine that keeps its own workdir (a remote engine), with the ' +
        'token minted for that build alone, when its network reaches `builds.resultUrl`: a tar of ' +
        '`builds/builds.json`, `builds/latest`, `builds/{cosaBuild}` and `tmp/kola`, written into the service\'s ' +
        'copy of the workdir and hashed as it arrives. Any other entry, or one through a link, refuses the whole ' +
        'upload (422). Only the replica supervising the build takes it (409 otherwise); whatever is not taken is ' +
        'copied through the engine when the build ends.',
      security: [{ buildToken: [] }],
      params: BuildParams,
      querystring: z.strictObject({
        cosaBuild: z.string().regex(COSA_BUILD_ID).meta({ description: 'the cosa build id the tar holds' })
      }),
      response: {
        200: z.object({
          files: z.number().int().meta({ description: 'files written' }),
          bytes: z.number().int().meta({ description: 'their bytes' })
        }).meta({ description: 'the files were written' }),
        ...errorResponses(400, 401, 403, 404, 409, 415, 422)
      }
    }
  }, async (request) => {
    // No body, or a JSON one (this plugin's other parser): not a tar.
    if (!(request.body instanceof Readable)) throw errors.unsupportedMediaType(sentType(request), 'application/x-tar')
    const { files } = await app.core.uploads.receive(request.params.id, request.query.cosaBuild, request.body)
    return { files: files.length, bytes: files.reduce((sum, f) => sum + f.size, 0) }
  })
}

export default results
