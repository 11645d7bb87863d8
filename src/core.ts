import { chmod, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ArtifactService } from './artifacts/artifact-service.js'
import { openArtifactStore } from './artifacts/open-store.js'
import { Publisher } from './artifacts/publisher.js'
import { SpaceGuard } from './artifacts/space-guard.js'
import { BuildLogs } from './builds/build-logs.js'
import { BuildRunner } from './builds/build-runner.js'
import { BuildService } from './builds/build-service.js'
import { BuildLifecycle } from './builds/lifecycle.js'
import { Reconciler } from './builds/reconciler.js'
import { ResultIntake } from './builds/result-intake.js'
import { Scheduler, type Gate } from './builds/scheduler.js'
import { urlPolicy, type Config } from './config.js'
import { DataDir } from './data-dir.js'
import { EventFeed } from './events/event-feed.js'
import { EventTokens } from './events/event-tokens.js'
import { ConfigMirror } from './git/config-mirror.js'
import { DockerEngine } from './runner/docker-engine.js'
import { SqliteStore } from './store/sqlite-store.js'
import type { Store } from './store/store.js'
import { StreamService } from './streams/stream-service.js'
import type { DeliveryResult } from './webhooks/model.js'
import { openWebhooks } from './webhooks/open-webhooks.js'
import type { WebhookService } from './webhooks/webhook-service.js'

// The application's services, wired once: the store, the engine, the build
// lifecycle and the services routes call. Background work (reconcile, then
// scheduling) starts when fastify is ready and stops when it closes; running
// builds are left to the next start to adopt, never killed.

export interface Core {
  config: Config
  dataDir: DataDir
  store: Store
  /** The one writer of build state; subscribe() to hear its events. */
  lifecycle: BuildLifecycle
  engine: DockerEngine
  streams: StreamService
  builds: BuildService
  results: ResultIntake
  artifacts: ArtifactService
  /** GET /v1/events: the outbox as Server-Sent Events. */
  events: EventFeed
  eventTokens: EventTokens
  /** The admin routes' webhooks; a dispatcher delivers in the background. */
  webhooks: WebhookService
  /** Aborts when the server starts closing: long responses (log follows) end so that it can. */
  closing: AbortSignal
}

declare module 'fastify' {
  interface FastifyInstance {
    core: Core
  }
}

const RESULT_ROUTE = /^\/v1\/builds\/[^/?]+\/result(\?|$)/

export interface CoreOptions {
  config: Config
  now?: () => Date
  reconcileIntervalMs?: number
  /** false: serve requests only (no scheduling, no result socket), e.g. to print the OpenAPI document. */
  background?: boolean
  /** Told of every webhook attempt's result (for metrics). */
  onWebhookDelivery?: (webhook: string, result: DeliveryResult) => void
}

/**
 * Queued builds wait, rather than fail, while space is low or the engine is
 * down. The answer holds for a second: a burst of submits wakes the
 * scheduler once per submit.
 */
function startable (space: SpaceGuard, engine: DockerEngine) {
  let last: { at: number, answer: Promise<Gate> } | undefined
  const ask = async (): Promise<Gate> => {
    const check = await space.check()
    if (!check.ok) return { ok: false, message: check.message, waitingFor: 'storage_low' }
    try {
      await engine.ping()
      return { ok: true }
    } catch (err) {
      return { ok: false, message: `the Docker engine is unavailable: ${(err as Error).message}`, waitingFor: 'engine_unavailable' }
    }
  }
  return () => {
    if (!last || Date.now() - last.at >= 1000) last = { at: Date.now(), answer: ask() }
    return last.answer
  }
}

export default fp(async function core (app: FastifyInstance, opts: CoreOptions) {
  const { config } = opts
  const now = opts.now ?? (() => new Date())
  const logger = app.log
  const dataDir = new DataDir(config.dataDir)
  const store = new SqliteStore(dataDir.database)
  const engine = new DockerEngine(config.docker)
  const logs = new BuildLogs(dataDir.logs, config.builds.logMaxBytes)
  const owner = dataDir.instanceId()
  const artifactStore = await openArtifactStore(config)
  const space = new SpaceGuard({ dataDir: dataDir.root, store: artifactStore, minFreeBytes: config.storage.minFreeBytes })
  const publisher = new Publisher({ store: artifactStore, guard: space, logger, now })
  const lifecycle = new BuildLifecycle({ store, now, logger })
  const runner = new BuildRunner({
    store, lifecycle, engine, logs, dataDir, config, logger, owner, now, publisher, mirror: new ConfigMirror({ timeoutMs: 5 * 60_000 })
  })
  const scheduler = new Scheduler({
    store, lifecycle, runner, maxConcurrent: config.builds.maxConcurrent, logger, canStart: startable(space, engine)
  })
  const reconciler = new Reconciler({ store, lifecycle, engine, runner, owner, logger })
  const webhooks = openWebhooks({
    config, database: dataDir.database, store, lifecycle, now, logger, onDelivery: opts.onWebhookDelivery
  })
  const closing = new AbortController()
  app.addHook('preClose', async () => closing.abort())

  app.decorate('core', {
    config,
    dataDir,
    store,
    lifecycle,
    engine,
    streams: new StreamService({
      store,
      engine,
      now,
      defaults: { image: config.builds.defaultImage, timeoutSeconds: config.builds.defaultTimeoutSeconds },
      urls: urlPolicy(config)
    }),
    builds: new BuildService({
      store, lifecycle, supervising: (id) => runner.isActive(id), logs, space, wake: () => scheduler.wake(), heldBy: () => scheduler.heldBy, now
    }),
    results: new ResultIntake({ store, lifecycle, dataDir }),
    artifacts: new ArtifactService({ store, artifacts: artifactStore }),
    events: new EventFeed({
      store, lifecycle, heartbeatMs: config.events.heartbeatSeconds * 1000, retryMs: config.events.retryMs
    }),
    eventTokens: new EventTokens({ keyFile: join(dataDir.root, 'event-token-key'), ttlSeconds: config.events.tokenTtlSeconds, now }),
    webhooks: webhooks.service,
    closing: closing.signal
  } satisfies Core)

  // Build containers reach the API through this socket (bind-mounted into
  // them), so results arrive even with no container network. It serves the
  // result route alone.
  let socketServer: Server | undefined
  let reconcileTimer: NodeJS.Timeout | undefined
  app.addHook('onReady', async () => {
    if (opts.background === false) return
    await rm(dataDir.apiSocket, { force: true })
    socketServer = createServer((req, res) => {
      if (req.method === 'POST' && RESULT_ROUTE.test(req.url ?? '')) return app.routing(req, res)
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ code: 'BLD_ROUTE_NOT_FOUND', message: 'this socket serves only POST /v1/builds/{id}/result' }))
    })
    await new Promise<void>((resolve, reject) => socketServer!.once('error', reject).listen(dataDir.apiSocket, resolve))
    // Whatever uid the image runs as must be able to connect; the per-build
    // token, not the file mode, is what authorizes a result.
    await chmod(dataDir.apiSocket, 0o666)
    try {
      await reconciler.reconcile()
    } catch (err) {
      // An engine that is down now may be back later; the periodic pass retries.
      logger.error({ err }, 'reconciling builds with the Docker engine failed')
    }
    scheduler.start()
    webhooks.start()
    reconcileTimer = setInterval(() => {
      reconciler.reconcile().catch((err) => logger.warn({ err }, 'periodic reconcile failed'))
    }, opts.reconcileIntervalMs ?? config.builds.reconcileIntervalMs).unref()
  })
  app.addHook('onClose', async () => {
    scheduler.stop()
    clearInterval(reconcileTimer)
    await webhooks.close()
    await runner.detachAll()
    await new Promise((resolve) => socketServer ? socketServer.close(resolve) : resolve(undefined))
    await store.close()
  })
}, { name: 'core' })
