import type { Metric, Registry } from 'prom-client'

// The histogram of HTTP answers, kept by hand. prom-client's Histogram
// converts, validates and hashes the labels of every observation: at tens of
// thousands of polls a second that was the largest cost of a 304 after
// node's own HTTP work (docs/benchmarks.md). Here the route template is bound
// once, when the route is added; an observation finds its series by method
// and status in two small maps and counts into a typed array. A scrape reads
// it through prom-client's registry like any other metric (the registry only
// calls get(), and reset() when asked).

interface Series {
  labels: { method: string, route: string, status: string }
  /** Observations per bucket, not cumulative (summed at scrape). */
  counts: Float64Array
  sum: number
  count: number
}

interface Value { labels: Record<string, string | number>, value: number, metricName: string }

export type AnswerObserver = (method: string, status: number, seconds: number) => void

export class AnswerHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #series = new Set<Series>()
  readonly #routes: Array<Map<string, Map<number, Series>>> = []

  constructor (readonly name: string, readonly help: string, readonly buckets: readonly number[], registry: Registry) {
    // The registry is typed for prom-client's own classes; it reads name, help, type, get() and reset().
    registry.registerMetric(this as unknown as Metric)
  }

  /** Observes the answers of one route template. */
  route (route: string): AnswerObserver {
    const byMethod = new Map<string, Map<number, Series>>()
    this.#routes.push(byMethod)
    return (method, status, seconds) => {
      let byStatus = byMethod.get(method)
      if (byStatus === undefined) byMethod.set(method, byStatus = new Map())
      let series = byStatus.get(status)
      if (series === undefined) {
        series = { labels: { method, route, status: String(status) }, counts: new Float64Array(this.buckets.length), sum: 0, count: 0 }
        byStatus.set(status, series)
        this.#series.add(series)
      }
      const i = this.buckets.findIndex((bound) => seconds <= bound)
      if (i >= 0) series.counts[i]!++
      series.sum += seconds
      series.count++
    }
  }

  get () {
    const values: Value[] = []
    for (const { labels, counts, sum, count } of this.#series) {
      let cumulative = 0
      this.buckets.forEach((le, i) => {
        cumulative += counts[i]!
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: `${this.name}_bucket` })
      })
      values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: `${this.name}_bucket` })
      values.push({ labels, value: sum, metricName: `${this.name}_sum` })
      values.push({ labels, value: count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset () {
    this.#series.clear()
    for (const byMethod of this.#routes) byMethod.clear()
  }
}
