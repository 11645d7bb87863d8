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
import { Housekeeping } from './builds/housekeeping.js'
import { BuildLifecycle } from './builds/lifecycle.js'
import { Reconciler } from './builds/reconciler.js'
import { ResultIntake } from './builds/result-intake.js'
import { Scheduler, type Gate } from './builds/scheduler.js'
import { urlPolicy, type Config } from './config.js'
import { DataDir } from './data-dir.js'
import type { Logger } from './logger.js'
import { EventFeed } from './events/event-feed.js'
import { EventTokens } from './events/event-tokens.js'
import { ConfigMirror } from './git/config-mirror.js'
import type { Metrics } from './metrics/metrics.js'
import { serviceMetrics } from './metrics/service-metrics.js'
import { DockerEngine } from './runner/docker-engine.js'
import { SqliteStore } from './store/sqlite-store.js'
import type { Store } from './store/store.js'
import { StreamRemoval } from './streams/stream-removal.js'
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
  space: SpaceGuard
  metrics: Metrics
  streams: StreamService
  streamRemoval: StreamRemoval
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

/**
 * Build containers reach the API through this socket (bind-mounted into
 * them), so results arrive even with no container network. It serves the
 * result route alone.
 */
async function openResultSocket (app: FastifyInstance, path: string) {
  await rm(path, { force: true })
  const server = createServer((req, res) => {
    if (req.method === 'POST' && RESULT_ROUTE.test(req.url ?? '')) return app.routing(req, res)
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ code: 'BLD_ROUTE_NOT_FOUND', message: 'this socket serves only POST /v1/builds/{id}/result' }))
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve))
  // Whatever uid the image runs as must be able to connect; the per-build
  // token, not the file mode, is what authorizes a result.
  await chmod(path, 0o666)
  return server
}

const streamDefaults = (config: Config) =>
  ({ image: config.builds.defaultImage, timeoutSeconds: config.builds.defaultTimeoutSeconds })

const repeat = (ms: number, what: string, logger: Logger, fn: () => Promise<unknown>) =>
  setInterval(() => { fn().catch((err) => logger.warn({ err }, `${what} failed`)) }, ms).unref()

/** The event stream over the outbox, and its tokens for EventSource. */
const eventServices = (config: Config, dataDir: DataDir, store: Store, lifecycle: BuildLifecycle, now: () => Date) => ({
  events: new EventFeed({ store, lifecycle, heartbeatMs: config.events.heartbeatSeconds * 1000, retryMs: config.events.retryMs }),
  eventTokens: new EventTokens({ keyFile: join(dataDir.root, 'event-token-key'), ttlSeconds: config.events.tokenTtlSeconds, now })
})

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
  const lifecycle = new BuildLifecycle({ store, now, logger })
  // Webhooks are opened below; the lag is read at scrape time.
  const metrics = serviceMetrics({ config, store, engine, lifecycle, outboxLagSeconds: () => webhooks.lagSeconds() })
  const publisher = new Publisher({
    store: artifactStore, guard: space, logger, now, onStored: (bytes, seconds) => metrics.published(bytes, seconds)
  })
  const runner = new BuildRunner({
    store, lifecycle, engine, logs, dataDir, config, logger, owner, now, publisher, mirror: new ConfigMirror({ timeoutMs: 5 * 60_000 })
  })
  const scheduler = new Scheduler({
    store, lifecycle, runner, maxConcurrent: config.builds.maxConcurrent, logger, canStart: startable(space, engine)
  })
  const reconciler = new Reconciler({ store, lifecycle, engine, runner, owner, logger })
  const housekeeping = new Housekeeping({ store, publisher, logs, retention: config.retention, now, logger })
  const builds = new BuildService({
    store, lifecycle, supervising: (id) => runner.isActive(id), logs, space, wake: () => scheduler.wake(), heldBy: () => scheduler.heldBy, now
  })
  const webhooks = openWebhooks({
    config, database: dataDir.database, store, lifecycle, now, logger, onDelivery: (webhook, result) => {
      metrics.webhookDelivered(webhook, result)
      opts.onWebhookDelivery?.(webhook, result)
    }
  })
  const closing = new AbortController()
  app.addHook('preClose', async () => closing.abort())

  app.decorate('core', {
    config,
    dataDir,
    store,
    lifecycle,
    engine,
    space,
    metrics,
    streams: new StreamService({ store, engine, now, defaults: streamDefaults(config), urls: urlPolicy(config) }),
    builds,
    streamRemoval: new StreamRemoval({ store, dataDir, artifacts: artifactStore, logs, forget: (s) => builds.forgetStream(s) }),
    results: new ResultIntake({ store, lifecycle, dataDir }),
    artifacts: new ArtifactService({ store, artifacts: artifactStore }),
    ...eventServices(config, dataDir, store, lifecycle, now),
    webhooks: webhooks.service,
    closing: closing.signal
  } satisfies Core)

  let socketServer: Server | undefined
  let timers: NodeJS.Timeout[] = []
  app.addHook('onReady', async () => {
    if (opts.background === false) return
    socketServer = await openResultSocket(app, dataDir.apiSocket)
    try {
      await reconciler.reconcile()
    } catch (err) {
      // An engine that is down now may be back later; the periodic pass retries.
      logger.error({ err }, 'reconciling builds with the Docker engine failed')
    }
    scheduler.start()
    webhooks.start()
    timers = [
      repeat(opts.reconcileIntervalMs ?? config.builds.reconcileIntervalMs, 'periodic reconcile', logger, () => reconciler.reconcile()),
      repeat(config.retention.pruneIntervalMinutes * 60_000, 'housekeeping', logger, () => housekeeping.prune())
    ]
  })
  app.addHook('onClose', async () => {
    scheduler.stop()
    for (const timer of timers) clearInterval(timer)
    await webhooks.close()
    await runner.detachAll()
    await new Promise((resolve) => socketServer ? socketServer.close(resolve) : resolve(undefined))
    await store.close()
  })
}, { name: 'core' })
