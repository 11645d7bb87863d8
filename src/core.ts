import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ArtifactService } from './artifacts/artifact-service.js'
import type { ArtifactStore } from './artifacts/artifact-store.js'
import { openArtifactStore } from './artifacts/open-store.js'
import { Publisher } from './artifacts/publisher.js'
import { SpaceGuard } from './artifacts/space-guard.js'
import { BuildRunner } from './builds/build-runner.js'
import { BuildService } from './builds/build-service.js'
import { Housekeeping } from './builds/housekeeping.js'
import { BuildLifecycle } from './builds/lifecycle.js'
import { Reconciler } from './builds/reconciler.js'
import { ResultIntake } from './builds/result-intake.js'
import { WorkdirUploads } from './builds/workdir-upload.js'
import { ResultSocket } from './http/result-socket.js'
import { Scheduler, type Gate } from './builds/scheduler.js'
import type { ArchPlacement } from './builds/run/context.js'
import { configuredEngines, urlPolicy, type Config } from './config.js'
import { DataDir } from './data-dir.js'
import type { Logger } from './logger.js'
import { EventFeed } from './events/event-feed.js'
import { EventTokens } from './events/event-tokens.js'
import { ConfigMirror } from './git/config-mirror.js'
import { openLogStore } from './logs/open-log-store.js'
import type { Metrics } from './metrics/metrics.js'
import { serviceMetrics } from './metrics/service-metrics.js'
import { EngineHealth } from './engines/engine-health.js'
import { EngineService, type Connect } from './engines/engine-service.js'
import { dockerConnection } from './executor/docker/connection.js'
import { DockerEngine } from './executor/docker/docker-engine.js'
import { DockerExecutor } from './executor/docker/docker-executor.js'
import { EngineRegistry, type EngineEntry } from './executor/engine-registry.js'
import { openDatabase, redactDatabaseUrl } from './store/open-database.js'
import type { Database } from './store/repositories.js'
import { StreamRemoval } from './streams/stream-removal.js'
import { StreamService } from './streams/stream-service.js'
import type { DeliveryResult } from './webhooks/model.js'
import { openWebhooks } from './webhooks/open-webhooks.js'
import type { WebhookService } from './webhooks/webhook-service.js'

// The application's services, wired once: the store, the engines, the build
// lifecycle and the services routes call. Background work (reconcile, then
// scheduling) starts when fastify is ready and stops when it closes; running
// builds are left to the next start to adopt, never killed.

export interface Core {
  config: Config
  dataDir: DataDir
  store: Database
  /** The one writer of build state; subscribe() to hear its events. */
  lifecycle: BuildLifecycle
  /** Where builds run: the engines of the config file and those admins added. */
  engines: EngineRegistry
  /** The admin routes' engines: add, drain, remove, and how each is doing. */
  engineAdmin: EngineService
  space: SpaceGuard
  metrics: Metrics
  streams: StreamService
  streamRemoval: StreamRemoval
  builds: BuildService
  results: ResultIntake
  /** PUT /v1/builds/{id}/workdir: a remote engine's build sending its files. */
  uploads: WorkdirUploads
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

/** An engine that does not answer a probe in this long counts as unreachable. */
const ENGINE_PROBE_MS = 5000

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
 * Queued builds wait, rather than fail, while space is low (engines that
 * are down are placement's: src/engines/placement.ts). The answer holds for
 * a second: a burst of submits wakes the scheduler once per submit.
 */
function startable (space: SpaceGuard) {
  let last: { at: number, answer: Promise<Gate> } | undefined
  const ask = async (): Promise<Gate> => {
    const check = await space.check()
    return check.ok ? { ok: true } : { ok: false, message: check.message, waitingFor: 'storage_low' }
  }
  return () => {
    if (!last || Date.now() - last.at >= 1000) last = { at: Date.now(), answer: ask() }
    return last.answer
  }
}

/** Events after which another replica may be able to start a build. */
const QUEUE_CHANGES = new Set(['build.queued', 'build.finished', 'build.requeued'])

const streamDefaults = (config: Config) =>
  ({ image: config.builds.defaultImage, timeoutSeconds: config.builds.defaultTimeoutSeconds })

/**
 * Replicas wake each other (hints, never relied on: the scheduler polls and
 * renewals read cancel requests too): when the queue changes, and when a
 * cancel of a build another replica supervises was requested here, so that
 * its supervisor stops it at once instead of at its next renewal.
 */
function replicaHints (deps: { store: Database, lifecycle: BuildLifecycle, scheduler: Scheduler, runner: BuildRunner, logger: Logger }) {
  const { store, lifecycle, scheduler, runner, logger } = deps
  const failed = (err: unknown) => logger.debug({ err }, 'hinting other replicas failed')
  const unsubscribe = lifecycle.subscribe((e) => {
    if (QUEUE_CHANGES.has(e.type)) store.hintQueue().catch(failed)
    if (e.type === 'build.cancel_requested' && !runner.isActive(e.buildId)) store.hintCancel(e.buildId).catch(failed)
  })
  const stops = [
    store.onQueueHint(() => scheduler.wake()),
    store.onCancelHint((buildId) => {
      if (!runner.isActive(buildId)) return
      // A hint is not a request: the row says whether a cancel was asked for.
      store.builds.getBuild(buildId)
        .then((build) => { if (build?.cancelRequestedAt) runner.cancel(buildId) })
        .catch((err) => logger.warn({ err, buildId }, 'reading a build after a cancel hint failed; the next renewal sees the cancel'))
    })
  ]
  return async () => {
    unsubscribe()
    await Promise.all(stops.map((stop) => stop()))
  }
}

const repeat = (ms: number, what: string, logger: Logger, fn: () => Promise<unknown>) =>
  setInterval(() => { fn().catch((err) => logger.warn({ err }, `${what} failed`)) }, ms).unref()

/** The event stream over the outbox, and its tokens for EventSource. */
const eventServices = (config: Config, dataDir: DataDir, store: Database, lifecycle: BuildLifecycle, now: () => Date) => ({
  events: new EventFeed({ store, lifecycle, heartbeatMs: config.events.heartbeatSeconds * 1000, retryMs: config.events.retryMs }),
  eventTokens: new EventTokens({ keyFile: join(dataDir.root, 'event-token-key'), ttlSeconds: config.events.tokenTtlSeconds, now })
})

/** The config file's engines, then those admins added (kept in the store). */
async function openEngines (config: Config, dataDir: DataDir, store: Database, now: () => Date, logger: Logger) {
  const owner = dataDir.instanceId()
  const connect: Connect = async (settings) => new DockerExecutor({
    name: settings.name,
    engine: new DockerEngine({ ...await dockerConnection(settings), callTimeoutMs: config.docker.callTimeoutMs }),
    dataDir,
    owner,
    builds: config.builds,
    arch: settings.arch,
    // A remote engine cannot see the service's disk: its workdirs are volumes on it.
    workspace: settings.host.startsWith('tcp://') ? 'volume' : 'host'
  })
  const configured = configuredEngines(config)
  const entries = await Promise.all(configured.map(async (s): Promise<EngineEntry> => {
    try {
      return { executor: await connect(s), capacity: s.capacity, draining: false }
    } catch (err) {
      throw new Error(`invalid configuration: engines: ${s.name}: ${(err as Error).message}`)
    }
  }))
  const engines = new EngineRegistry(entries as [EngineEntry, ...EngineEntry[]])
  const health = new EngineHealth({ registry: engines, timeoutMs: Math.min(config.docker.callTimeoutMs, ENGINE_PROBE_MS), now })
  const engineAdmin = new EngineService({ store, registry: engines, health, connect, now, logger })
  await engineAdmin.load(configured)
  return { engines, engineAdmin, health }
}

interface Foundations {
  config: Config
  dataDir: DataDir
  store: Database
  engines: EngineRegistry
  health: EngineHealth
  artifactStore: ArtifactStore
  now: () => Date
  logger: Logger
  onWebhookDelivery: CoreOptions['onWebhookDelivery']
}

/** A build's way from the queue to its artifacts: the one writer of its state, and what starts, runs, adopts and prunes builds. */
function wireBuilds (f: Foundations) {
  const { config, dataDir, store, engines, health, artifactStore, now, logger } = f
  const logs = openLogStore(store, dataDir.logs, config.builds.logMaxBytes)
  const space = new SpaceGuard({ dataDir: dataDir.root, store: artifactStore, minFreeBytes: config.storage.minFreeBytes })
  const lifecycle = new BuildLifecycle({ store, now, logger, lease: { owner: config.replicas.id, ms: config.replicas.leaseSeconds * 1000 },
    infrastructureRetries: config.builds.infrastructureRetries
  })
  // Webhooks are opened below; the lag is read at scrape time.
  const metrics = serviceMetrics({ config, store, engines, lifecycle, outboxLagSeconds: () => webhooks.lagSeconds() })
  const publisher = new Publisher({
    store: artifactStore,
    guard: space,
    logger,
    now,
    onStored: (bytes, seconds) => metrics.published(bytes, seconds),
    // One replica at a time changes a stream's builds.json (docs/scale-out.md).
    lockStream: (stream) => lifecycle.leases.lock(`builds.json/${stream}`)
  })
  const results = new ResultIntake({ store, lifecycle, engines })
  const uploads = new WorkdirUploads({ store, engines, leases: lifecycle.leases })
  const runner = new BuildRunner({
    store, lifecycle, engines, logs, dataDir, config, logger, now, publisher, results, uploads, mirror: new ConfigMirror({ timeoutMs: 5 * 60_000 }),
    // A multi-arch build's next arch is placed as a queued build is.
    placeArch: (build, arch, waitedMs): Promise<ArchPlacement> => scheduler.placeArch(build, arch, waitedMs)
  })
  const scheduler = new Scheduler({
    store,
    lifecycle,
    runner,
    maxConcurrent: config.builds.maxConcurrent,
    logger,
    engines,
    health,
    homeEngineWaitMs: config.builds.homeEngineWaitMs,
    now,
    canStart: startable(space)
  })
  const builds = new BuildService({
    store, lifecycle, supervising: (id) => runner.isActive(id), logs, space, wake: () => scheduler.wake(), waitingFor: (id) => scheduler.waitingFor(id), now
  })
  const webhooks = openWebhooks({
    config, store, lifecycle, now, logger, onDelivery: (webhook, result) => {
      metrics.webhookDelivered(webhook, result)
      f.onWebhookDelivery?.(webhook, result)
    }
  })
  return {
    logs, space, lifecycle, metrics, results, uploads, runner, scheduler, builds, webhooks,
    reconciler: new Reconciler({ store, lifecycle, engines, runner, logger, engineLostMs: config.builds.engineLostMs }),
    housekeeping: new Housekeeping({ store, publisher, logs, retention: config.retention, now, logger })
  }
}

type Background = ReturnType<typeof wireBuilds> & { store: Database, engineAdmin: EngineService, artifactStore: ArtifactStore, dataDir: DataDir }

/**
 * Once fastify is ready: the result socket, lease renewals, a reconcile
 * (adopting what the last process left running), then scheduling, replica
 * hints, webhooks and the periodic duties. On close, all of it stops and
 * running builds are left to the next start.
 */
function runInBackground (app: FastifyInstance, opts: CoreOptions, b: Background) {
  const { config } = opts
  const { store, lifecycle, runner, scheduler, reconciler, housekeeping, webhooks, engineAdmin, artifactStore } = b
  const logger = app.log
  const resultSocket = new ResultSocket(app, b.dataDir.apiSocket)
  const timers: NodeJS.Timeout[] = []
  let stopHints = async () => {}
  app.addHook('onReady', async () => {
    if (opts.background === false) return
    await resultSocket.take()
    // Leases are renewed three times per lease: two renewals may fail before one is lost.
    const renewMs = config.replicas.leaseSeconds * 1000 / 3
    timers.push(repeat(renewMs, 'renewing build leases', logger, async () => {
      for (const id of await lifecycle.leases.renew()) runner.cancel(id)
      await resultSocket.take()
    }))
    try {
      await reconciler.reconcile()
    } catch (err) {
      // An engine that is down now may be back later; the periodic pass retries.
      logger.error({ err }, 'reconciling builds with the engines failed')
    }
    scheduler.start()
    stopHints = replicaHints({ store, lifecycle, scheduler, runner, logger })
    webhooks.start()
    timers.push(
      repeat(opts.reconcileIntervalMs ?? config.builds.reconcileIntervalMs, 'periodic reconcile', logger, () => reconciler.reconcile()),
      // Engines another instance on the same database added, drained or removed.
      repeat(opts.reconcileIntervalMs ?? config.builds.reconcileIntervalMs, 'engine sync', logger, () => engineAdmin.sync()),
      repeat(config.retention.pruneIntervalMinutes * 60_000, 'housekeeping', logger, async () => {
        // One replica at a time (a lease row, docs/scale-out.md).
        if (await lifecycle.leases.duty('housekeeping')) await housekeeping.prune()
      })
    )
  })
  app.addHook('onClose', async () => {
    scheduler.stop()
    await stopHints()
    for (const timer of timers) clearInterval(timer)
    await webhooks.close()
    await runner.detachAll()
    await resultSocket.close()
    await artifactStore.close?.()
    await store.close()
  })
}

export default fp(async function core (app: FastifyInstance, opts: CoreOptions) {
  const { config } = opts
  const now = opts.now ?? (() => new Date())
  const logger = app.log
  const dataDir = new DataDir(config.dataDir)
  const store = await openDatabase(config.database, dataDir.database)
  logger.info({ database: config.database.url === undefined ? dataDir.database : redactDatabaseUrl(config.database.url) }, `state on ${store.dialect}`)
  const { engines, engineAdmin, health } = await openEngines(config, dataDir, store, now, logger)
  const artifactStore = await openArtifactStore(config)
  const wired = wireBuilds({ config, dataDir, store, engines, health, artifactStore, now, logger, onWebhookDelivery: opts.onWebhookDelivery })
  const { logs, builds } = wired
  const closing = new AbortController()
  app.addHook('preClose', async () => closing.abort())

  app.decorate('core', {
    config,
    dataDir,
    store,
    lifecycle: wired.lifecycle,
    engines,
    engineAdmin,
    space: wired.space,
    metrics: wired.metrics,
    streams: new StreamService({ store, engine: engines.default, now, defaults: streamDefaults(config), urls: urlPolicy(config) }),
    builds,
    streamRemoval: new StreamRemoval({ store, dataDir, artifacts: artifactStore, logs, engines, logger, forget: (s) => builds.forgetStream(s) }),
    results: wired.results,
    uploads: wired.uploads,
    artifacts: new ArtifactService({ store, artifacts: artifactStore }),
    ...eventServices(config, dataDir, store, wired.lifecycle, now),
    webhooks: wired.webhooks.service,
    closing: closing.signal
  } satisfies Core)

  runInBackground(app, opts, { ...wired, store, engineAdmin, artifactStore, dataDir })
}, { name: 'core' })
