import type { BuildLifecycle } from '../builds/lifecycle.js'
import type { Config } from '../config.js'
import type { DockerEngine } from '../runner/docker-engine.js'
import type { Store } from '../store/store.js'
import { VERSION } from '../version.js'
import { Metrics } from './metrics.js'

/** How long a scrape waits for the engine's ping before it says the engine is down. */
const ENGINE_PROBE_MS = 2000

/**
 * The metrics of this service: gauges read from the store and the engine at
 * each scrape, build counters and durations from the lifecycle's events.
 */
export function serviceMetrics (deps: {
  config: Config, store: Store, engine: DockerEngine, lifecycle: BuildLifecycle, outboxLagSeconds: () => Promise<number>
}) {
  const { config, store, engine, lifecycle } = deps
  const metrics = new Metrics({
    activeBuilds: async () => ({ streams: (await store.listStreams()).map((s) => s.name), counts: await store.activeCounts() }),
    enginesUp: async () => ({ default: await engine.ping(AbortSignal.timeout(ENGINE_PROBE_MS)).then(() => true, () => false) }),
    outboxLagSeconds: deps.outboxLagSeconds
  }, { version: VERSION, maxConcurrent: config.builds.maxConcurrent })
  lifecycle.subscribe((event) => {
    if (event.type === 'build.started') metrics.buildStarted(event.build)
    else if (event.type === 'build.finished') metrics.buildFinished(event.build)
  })
  return metrics
}
