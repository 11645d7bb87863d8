import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { secondsBetween } from '../builds/lifecycle.js'
import { AnswerHistogram, type AnswerObserver } from './answer-histogram.js'
import type { Build } from '../builds/model.js'

/** What the build metrics read of a build. */
type Timed = Pick<Build, 'stream' | 'state' | 'reason' | 'createdAt' | 'startedAt' | 'finishedAt'>

// The service's Prometheus metrics, on a registry of its own (one per app, so
// that tests with several apps in a process do not share counters). Names
// follow Prometheus' conventions: one prefix, base units (seconds, bytes),
// `_total` on counters, and only bounded labels — streams are registered by
// operators; a build id is never a label. Gauges of builds are read from the
// store at each scrape, so they are right after a restart; counters start at
// zero with the process, as Prometheus expects of them.

const PREFIX = 'cosa_buildd_'

// Builds run from seconds (an unchanged rebuild) to many hours (a real cosa
// build with tests): buckets up to 24 h.
const BUILD_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 43200, 86400]
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const PUBLISH_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600]

/** What a scrape reads from the rest of the service. */
export interface MetricsSources {
  /** Queued and running builds per stream, and every stream's name (for zeros). */
  activeBuilds: () => Promise<{ streams: string[], counts: Array<{ stream: string, state: 'queued' | 'running', count: number }> }>
  /** Whether each engine answers, by name. */
  enginesUp: () => Promise<Record<string, boolean>>
  /** Seconds since the oldest event not yet delivered to a webhook was made (0: none waits). */
  outboxLagSeconds: () => Promise<number>
}


export class Metrics {
  readonly registry = new Registry()
  readonly #builds: Counter<'stream' | 'state' | 'reason'>
  readonly #duration: Histogram<'stream' | 'state'>
  readonly #queueWait: Histogram<'stream'>
  readonly #publishBytes: Counter
  readonly #publishDuration: Histogram
  readonly #http: AnswerHistogram
  readonly #webhooks: Counter<'webhook' | 'result'>

  constructor (sources: MetricsSources, info: { version: string, maxConcurrent: number }) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    // prom-client names these gauges `_total`, which Prometheus reserves for
    // counters (promtool check metrics refuses them); the same counts are in
    // nodejs_active_{handles,requests,resources} without the suffix.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      this.registry.removeSingleMetric(name)
    }
    new Gauge({ name: `${PREFIX}build_info`, help: 'The running version (always 1)', labelNames: ['version'], registers })
      .set({ version: info.version }, 1)
    new Gauge({ name: `${PREFIX}builds_max_concurrent`, help: 'Builds that may run at once', registers })
      .set(info.maxConcurrent)
    this.#builds = new Counter({
      name: `${PREFIX}builds_total`,
      help: 'Builds that reached a final state, by state and failure reason',
      labelNames: ['stream', 'state', 'reason'],
      registers
    })
    this.#duration = new Histogram({
      name: `${PREFIX}build_duration_seconds`,
      help: 'From the start of a build to its final state',
      labelNames: ['stream', 'state'],
      buckets: BUILD_BUCKETS,
      registers
    })
    this.#queueWait = new Histogram({
      name: `${PREFIX}build_queue_wait_seconds`,
      help: 'From the submit of a build to its start',
      labelNames: ['stream'],
      buckets: BUILD_BUCKETS,
      registers
    })
    this.#publishBytes = new Counter({ name: `${PREFIX}publish_bytes_total`, help: 'Bytes stored by publishing builds', registers })
    this.#publishDuration = new Histogram({
      name: `${PREFIX}publish_duration_seconds`,
      help: 'Time to publish a build to the artifact store',
      buckets: PUBLISH_BUCKETS,
      registers
    })
    this.#http = new AnswerHistogram(`${PREFIX}http_request_duration_seconds`,
      'HTTP answers by method, route template and status', HTTP_BUCKETS, this.registry)
    this.#webhooks = new Counter({
      name: `${PREFIX}webhook_deliveries_total`,
      help: 'Webhook delivery attempts by result: delivered, retrying, failed (gave up), gone (410: disabled)',
      labelNames: ['webhook', 'result'],
      registers
    })
    new Gauge({
      name: `${PREFIX}events_outbox_lag_seconds`,
      help: 'Age of the oldest build event not yet delivered to a webhook (0: none waits)',
      registers,
      async collect () { this.set(await sources.outboxLagSeconds()) }
    })
    this.#activeGauges(sources)
    new Gauge({
      name: `${PREFIX}engine_up`,
      help: 'Whether the Docker engine answers a ping (1) or not (0)',
      labelNames: ['engine'],
      registers,
      async collect () {
        this.reset()
        for (const [engine, up] of Object.entries(await sources.enginesUp())) this.set({ engine }, up ? 1 : 0)
      }
    })
  }

  #activeGauges (sources: MetricsSources) {
    const registers = [this.registry]
    // One store read serves both gauges when a scrape collects them together.
    let pending: ReturnType<MetricsSources['activeBuilds']> | undefined
    const read = () => (pending ??= sources.activeBuilds().finally(() => { pending = undefined }))
    for (const [state, help] of [['queued', 'Builds waiting to start'], ['running', 'Builds running']] as const) {
      new Gauge({
        name: `${PREFIX}builds_${state}`,
        help,
        labelNames: ['stream'],
        registers,
        async collect () {
          const { streams, counts } = await read()
          this.reset()
          for (const stream of streams) this.set({ stream }, 0)
          for (const c of counts) if (c.state === state) this.set({ stream: c.stream }, c.count)
        }
      })
    }
  }

  buildStarted (build: Timed) {
    const wait = secondsBetween(build.createdAt, build.startedAt)
    if (wait !== undefined) this.#queueWait.observe({ stream: build.stream }, wait)
  }

  buildFinished (build: Timed) {
    this.#builds.inc({ stream: build.stream, state: build.state, reason: build.reason ?? '' })
    const ran = secondsBetween(build.startedAt, build.finishedAt)
    if (ran !== undefined) this.#duration.observe({ stream: build.stream, state: build.state }, ran)
  }

  published (bytes: number, durationSeconds: number) {
    this.#publishBytes.inc(bytes)
    this.#publishDuration.observe(durationSeconds)
  }

  webhookDelivered (webhook: string, result: string) {
    this.#webhooks.inc({ webhook, result })
  }

  /** Observes the answers of a route template (method, status, seconds). */
  answers (route: string): AnswerObserver {
    return this.#http.route(route)
  }
}
