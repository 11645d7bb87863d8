import { access, constants } from 'node:fs/promises'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'

const Check = z.object({ ok: z.boolean(), message: z.string().optional() })
const Readiness = z.object({
  status: z.enum(['ok', 'unavailable']),
  checks: z.object({ database: Check, docker: Check, dataDir: Check })
})

async function check (fn: () => Promise<unknown>) {
  try {
    await fn()
    return { ok: true }
  } catch (err) {
    return { ok: false, message: (err as Error).message }
  }
}

const health: FastifyPluginAsyncZod = async (app) => {
  app.get('/healthz', {
    schema: {
      tags: ['health'],
      operationId: 'getLiveness',
      summary: 'The process answers',
      description: 'Liveness: 200 while the process serves requests, whatever the engine and the store do.',
      response: { 200: z.object({ status: z.literal('ok') }) }
    }
  }, async () => ({ status: 'ok' as const }))

  app.get('/readyz', {
    schema: {
      tags: ['health'],
      operationId: 'getReadiness',
      summary: 'Database, Docker engine and data directory all work',
      description: 'Readiness: 200 when the database, the Docker engine and the data directory answer; 503 with ' +
        'the failing check otherwise.',
      response: { 200: Readiness, 503: Readiness }
    }
  }, async (_request, reply) => {
    const { store, engine, dataDir } = app.core
    const checks = {
      database: await check(() => store.ping()),
      docker: await check(() => engine.ping()),
      dataDir: await check(() => access(dataDir.root, constants.W_OK))
    }
    const ok = Object.values(checks).every((c) => c.ok)
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks })
  })
}

export default health
