import { access, constants } from 'node:fs/promises'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'

const Check = z.object({ ok: z.boolean(), message: z.string().optional() })
const Readiness = z.object({
  status: z.enum(['ok', 'degraded', 'unavailable']),
  checks: z.object({ database: Check, dataDir: Check, docker: Check, storage: Check })
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

  // Ready means "send me requests": reads, downloads, polls and submits all
  // work with the database and the data directory alone. A Docker engine
  // that is down or free space that is low holds builds back (they wait
  // queued), so they make the answer `degraded`, not 503: taking every
  // replica out of a load balancer over an engine restart would turn a
  // pause in building into an outage of the whole API.
  app.get('/readyz', {
    schema: {
      tags: ['health'],
      operationId: 'getReadiness',
      summary: 'Whether this instance can serve requests',
      description: 'Readiness: 200 when the database and the data directory work (`status` is `degraded` when ' +
        'the Docker engine is down or free space is low: builds wait, everything else is served); 503 when ' +
        'the database or the data directory fails.',
      response: { 200: Readiness, 503: Readiness }
    }
  }, async (_request, reply) => {
    const { store, engines, dataDir, space } = app.core
    const checks = {
      database: await check(() => store.ping()),
      dataDir: await check(() => access(dataDir.root, constants.W_OK)),
      docker: await check(() => engines.default.ping()),
      storage: await check(async () => {
        const free = await space.check()
        if (!free.ok) throw new Error(free.message)
      })
    }
    const serving = checks.database.ok && checks.dataDir.ok
    const status = !serving ? 'unavailable' : checks.docker.ok && checks.storage.ok ? 'ok' : 'degraded'
    return reply.code(serving ? 200 : 503).send({ status, checks })
  })
}

export default health
