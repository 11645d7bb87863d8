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
    schema: { tags: ['health'], summary: 'The process answers', response: { 200: z.object({ status: z.literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  app.get('/readyz', {
    schema: {
      tags: ['health'],
      summary: 'Database, Docker engine and data directory all work',
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
