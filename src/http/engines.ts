import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import { errorResponses } from './schemas/common.js'
import { Engine, EngineInput, EngineList, EngineName } from './schemas/engine.js'

// Admin routes for the engines builds run on (docs/engines.md).

const security = [{ bearerAuth: [] }]
const config = { access: 'admin' as const }
const tags = ['engines']
const Params = z.object({ name: EngineName })

const engines: FastifyPluginAsyncZod = async (app) => {
  app.get('/v1/engines', {
    config,
    schema: {
      tags,
      operationId: 'listEngines',
      summary: 'List engines, with how each is doing',
      description: 'Every engine, probed for this answer: reachable, its Docker version and arch, the builds it runs ' +
        'and the last error it gave.',
      security,
      response: { 200: EngineList, ...errorResponses(401, 403) }
    }
  }, async () => ({ engines: await app.core.engineAdmin.list() }))

  app.get('/v1/engines/:name', {
    config,
    schema: {
      tags,
      operationId: 'getEngine',
      summary: 'Get an engine',
      description: 'The engine, probed for this answer.',
      security,
      params: Params,
      response: { 200: Engine, ...errorResponses(400, 401, 403, 404) }
    }
  }, async (request) => app.core.engineAdmin.get(request.params.name))

  app.put('/v1/engines/:name', {
    config,
    schema: {
      tags,
      operationId: 'putEngine',
      summary: 'Add or change an engine',
      description: '201 when it added the engine, 200 when it changed one. The certificate files must be readable PEM ' +
        '(422 `BLD_ENGINE_INVALID` otherwise). The engine is kept even when it does not answer yet: the answer and GET ' +
        'say `reachable: false` and why. An engine of the configuration file is refused (409 `BLD_ENGINE_CONFIGURED`), ' +
        'as is a new host for an engine that runs builds (409 `BLD_ENGINE_BUSY`).',
      security,
      params: Params,
      body: EngineInput,
      response: { 200: Engine, 201: Engine, ...errorResponses(400, 401, 403, 409, 413, 415, 422) }
    }
  }, async (request, reply) => {
    const { engine, created } = await app.core.engineAdmin.put(request.params.name, request.body)
    return reply.code(created ? 201 : 200).send(engine)
  })

  app.delete('/v1/engines/:name', {
    config,
    schema: {
      tags,
      operationId: 'deleteEngine',
      summary: 'Remove an engine',
      description: 'Refused while the engine runs builds (409 `BLD_ENGINE_BUSY`: drain it first) and for an engine of ' +
        'the configuration file (409 `BLD_ENGINE_CONFIGURED`). Its streams\' next builds go to other engines of their arch.',
      security,
      params: Params,
      response: { 204: z.null().meta({ description: 'removed' }), ...errorResponses(400, 401, 403, 404, 409) }
    }
  }, async (request, reply) => {
    await app.core.engineAdmin.delete(request.params.name)
    return reply.code(204).send(null)
  })

  for (const [verb, draining] of [['drain', true], ['undrain', false]] as const) {
    app.post(`/v1/engines/:name/${verb}`, {
      config,
      schema: {
        tags,
        operationId: `${verb}Engine`,
        summary: draining ? 'Stop placing new builds on an engine' : 'Place builds on an engine again',
        description: draining
          ? 'New builds go to other engines of their arch (or wait for one); builds it runs finish there. Kept across restarts.'
          : 'Ends a drain.',
        security,
        params: Params,
        response: { 200: Engine, ...errorResponses(400, 401, 403, 404) }
      }
    }, async (request) => app.core.engineAdmin.drain(request.params.name, draining))
  }
}

export default engines
