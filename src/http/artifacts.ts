import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { sendStoredFile } from './download.js'
import { Build, BuildParams } from './schemas/build.js'
import { SAFE_PART } from '../artifacts/store-layout.js'
import { errorResponses, StreamName } from './schemas/common.js'

// Downloads of published builds: one artifact of a build by its meta.json
// name, and the stream's store in cosa's layout, read-only, for browsers and
// `cosa buildfetch --url <server>/v1/streams/<stream>/builds`.

const security = [{ bearerAuth: [] }]
// Published builds of a `publicRead` stream need no token.
const publishedSecurity: Array<Record<string, string[]>> = [{ bearerAuth: [] }, {}]
const FilePart = z.string().min(1).max(255).meta({ pattern: SAFE_PART.source })
const binary = z.string().meta({ description: 'the file\'s bytes' })
const fileResponses = { 200: binary, 206: binary, ...errorResponses(400, 401, 403, 404, 410, 416, 503) }

// cosa's layout, read-only: builds.json, files shared by a build's arches, and each arch's files.
const LAYOUT_FILES = [
  {
    path: 'builds.json',
    operationId: 'getBuildsJson',
    parts: [],
    summary: 'The stream\'s builds.json in the store',
    description: 'cosa\'s list of published builds, newest first. With the next routes, this is the layout ' +
      '`cosa buildfetch --url` reads.'
  },
  {
    path: ':buildId/:file',
    operationId: 'getBuildFile',
    parts: ['buildId', 'file'],
    summary: 'A file of a published build shared by its arches, in cosa\'s layout',
    description: 'A regular file directly under builds/<id>/ (beside the arch directories), as cosa writes and ' +
      '`cosa buildupload` uploads them.'
  },
  {
    path: ':buildId/:arch/:file',
    operationId: 'getBuildArchFile',
    parts: ['buildId', 'arch', 'file'],
    summary: 'A file of a published build, in cosa\'s layout',
    description: 'meta.json, an image, or any other file cosa wrote in builds/<id>/<arch>/ ' +
      '(commitmeta.json, ostree-commit-object, manifest-lock.generated.<arch>.json, …).'
  }
]

const artifacts: FastifyPluginAsyncZod = async (app) => {
  // HEAD is declared, not derived from GET: fastify's derived HEAD would
  // read the whole file to throw it away.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/v1/builds/:id/artifacts/:name',
    config: { access: 'read', publishedBuilds: true },
    schema: {
      tags: ['artifacts'],
      operationId: 'getArtifact',
      summary: 'Download an artifact of a build',
      description: '`name` is a key of meta.json `images` (e.g. `ostree`, `qemu`). Supports HEAD, a single ' +
        '`Range`, `If-None-Match` and `If-Range`; the ETag is the quoted sha256. 410 when retention pruned it.',
      security: publishedSecurity,
      params: BuildParams.extend({ name: z.string().min(1).max(128) }),
      response: fileResponses
    },
    handler: async (request, reply) => {
      const file = await app.core.artifacts.artifact(request.params.id, request.params.name)
      return sendStoredFile(request, reply, app.core.artifacts, file)
    }
  })

  for (const file of LAYOUT_FILES) {
    app.route({
      method: ['GET', 'HEAD'],
      url: `/v1/streams/:stream/builds/${file.path}`,
      config: { access: 'read', publishedBuilds: true },
      schema: {
        tags: ['artifacts'],
        operationId: file.operationId,
        summary: file.summary,
        description: file.description,
        security: publishedSecurity,
        params: z.object({ stream: StreamName, ...Object.fromEntries(file.parts.map((part) => [part, FilePart])) }),
        response: fileResponses
      },
      handler: async (request, reply) => {
        const params = request.params as Record<string, string>
        const parts = file.parts.length ? file.parts.map((part) => params[part]!) : [file.path]
        const stored = await app.core.artifacts.layoutFile(params.stream!, parts)
        return sendStoredFile(request, reply, app.core.artifacts, stored)
      }
    })
  }

  for (const [method, pinned] of [['PUT', true], ['DELETE', false]] as const) {
    app.route({
      method,
      url: '/v1/builds/:id/pin',
      config: { access: 'submit' },
      schema: {
        tags: ['artifacts'],
        operationId: pinned ? 'pinBuild' : 'unpinBuild',
        summary: pinned ? 'Pin a build: retention never prunes it' : 'Unpin a build',
        description: 'Pins the cosa build a succeeded or unchanged build made or found. Pinned builds do not ' +
          'count towards the stream\'s `keep`. Idempotent.',
        security,
        params: BuildParams,
        response: { 200: Build, ...errorResponses(400, 401, 403, 404, 409) }
      },
      handler: async (request) => app.core.builds.pin(request.params.id, pinned)
    })
  }
}

export default artifacts
