import type { BuildLifecycle } from '../builds/lifecycle.js'
import type { Config } from '../config.js'
import type { EngineRegistry } from '../executor/engine-registry.js'
import type { Database } from '../store/repositories.js'
import { VERSION } from '../version.js'
import { Metrics } from './metrics.js'

/** How long a scrape waits for the engine's ping before it says the engine is down. */
const ENGINE_PROBE_MS = 2000

/**
 * The metrics of this service: gauges read from the store and the engines at
 * each scrape, build counters and durations from the lifecycle's events.
 */
export function serviceMetrics (deps: {
  config: Config, store: Database, engines: EngineRegistry, lifecycle: BuildLifecycle, outboxLagSeconds: () => Promise<number>
}) {
  const { config, store, engines, lifecycle } = deps
  const metrics = new Metrics({
    activeBuilds: async () => ({ streams: (await store.streams.listStreams()).map((s) => s.name), counts: await store.builds.activeCounts() }),
    enginesUp: async () => Object.fromEntries(await Promise.all(engines.all().map(async (engine) =>
      [engine.name, await engine.ping(AbortSignal.timeout(ENGINE_PROBE_MS)).then(() => true, () => false)] as const))),
    outboxLagSeconds: deps.outboxLagSeconds
  }, { version: VERSION, maxConcurrent: config.builds.maxConcurrent })
  lifecycle.subscribe((event) => {
    if (event.type === 'build.started') metrics.buildStarted(event.build)
    else if (event.type === 'build.finished') metrics.buildFinished(event.build)
  })
  return metrics
}
