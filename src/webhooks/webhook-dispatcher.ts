import type { BuildLifecycle } from '../builds/lifecycle.js'
import { configUrlRefusal, systemLookup, type Lookup, type UrlPolicy } from '../git/config-url.js'
import type { Logger } from '../logger.js'
import type { Database, WebhookRepository } from '../store/repositories.js'
import type { AttemptOutcome, DeliveryResult, DueDelivery } from './model.js'
import { signedHeaders } from './signature.js'
import { fanOut } from './webhook-fanout.js'
import type { Send, SendResult } from './webhook-sender.js'

// The background worker: moves outbox events into deliveries (fanOut), then
// sends the deliveries that are due, at most `concurrency` at once, each
// within `timeoutMs`. Nothing here runs on a request's path or a build's:
// the lifecycle only wakes it. A delivery is marked done only after its
// receiver answered 2xx, so one cut short by a crash is sent again
// (at least once; receivers drop repeats by webhook-id).

/** Even with nothing due, look again this often (a webhook's events may come from nowhere else). */
const IDLE_MS = 5000
const JITTER = 0.2

export interface DispatcherOptions {
  timeoutMs: number
  concurrency: number
  /** The waits after each failed attempt, in seconds; when they run out the delivery has failed. */
  retrySeconds: number[]
}

export interface DispatcherDeps extends DispatcherOptions {
  store: Database
  webhooks: WebhookRepository
  lifecycle: BuildLifecycle
  policy: UrlPolicy
  send: Send
  now: () => Date
  logger: Logger
  lookup?: Lookup
  /**
   * Whether this replica may send now: with several replicas, the one that
   * holds the `webhooks` duty does (docs/scale-out.md). Moving events into
   * deliveries is safe everywhere (a cursor moved conditionally).
   */
  mayDeliver?: () => Promise<boolean>
  /** Told of every attempt's result (metrics). */
  onDelivery?: (webhook: string, result: DeliveryResult) => void
  random?: () => number
}

/** The wait after failed attempt number `tries` (1-based), with ±20 % jitter; undefined when there is no retry left. */
export function retryDelayMs (retrySeconds: number[], tries: number, random: () => number = Math.random) {
  const base = retrySeconds[tries - 1]
  if (base === undefined) return undefined
  return Math.round(base * 1000 * (1 - JITTER + 2 * JITTER * random()))
}

export class WebhookDispatcher {
  readonly #deps: DispatcherDeps
  readonly #inFlight = new Map<string, Promise<void>>()
  #running = false
  #busy: Promise<void> | undefined
  #again = false
  #timer: NodeJS.Timeout | undefined
  #unsubscribe: (() => void) | undefined
  #stop = new AbortController()

  constructor (deps: DispatcherDeps) {
    this.#deps = deps
  }

  start () {
    if (this.#running) return
    this.#running = true
    this.#stop = new AbortController()
    this.#unsubscribe = this.#deps.lifecycle.subscribe(() => this.wake())
    this.wake()
  }

  /** Stops sending; attempts in flight are cut short and stay pending, to be sent again after the next start. */
  async stop () {
    this.#running = false
    this.#unsubscribe?.()
    clearTimeout(this.#timer)
    this.#stop.abort(new Error('the service is stopping'))
    await Promise.allSettled([this.#busy, ...this.#inFlight.values()])
  }

  wake () {
    if (!this.#running) return
    if (this.#busy) {
      this.#again = true
      return
    }
    this.#busy = this.#pass()
  }

  async #pass () {
    clearTimeout(this.#timer)
    try {
      do {
        this.#again = false
        await fanOut(this.#deps.store, this.#deps.webhooks, this.#deps.now().toISOString())
        if (await this.#deps.mayDeliver?.() !== false) await this.#dispatch()
      } while (this.#again && this.#running)
    } catch (err) {
      this.#deps.logger.error({ err }, 'webhook dispatch failed')
    }
    await this.#schedule()
    this.#busy = undefined
    // Woken while it scheduled: that news would otherwise wait for the timer.
    if (this.#again) this.wake()
  }

  async #schedule () {
    if (!this.#running) return
    const next = await this.#deps.webhooks.nextDueAt().catch(() => undefined)
    const wait = next === undefined ? IDLE_MS : Math.max(0, Math.min(IDLE_MS, Date.parse(next) - this.#deps.now().getTime()))
    this.#timer = setTimeout(() => this.wake(), wait).unref()
  }

  async #dispatch () {
    const free = this.#deps.concurrency - this.#inFlight.size
    if (free <= 0) return
    const due = await this.#deps.webhooks.dueDeliveries(this.#deps.now().toISOString(), free, [...this.#inFlight.keys()])
    for (const delivery of due) {
      const attempt = this.#attempt(delivery)
        .catch((err) => this.#deps.logger.error({ err, webhook: delivery.webhook }, 'recording a webhook attempt failed'))
        .finally(() => {
          this.#inFlight.delete(delivery.id)
          this.wake()
        })
      this.#inFlight.set(delivery.id, attempt)
    }
  }

  async #attempt (d: DueDelivery) {
    const at = this.#deps.now()
    const started = performance.now()
    const answer = await this.#send(d, at)
    if (this.#stop.signal.aborted) return
    const durationMs = Math.round(performance.now() - started)
    const { outcome, result } = this.#judge(d, answer.statusCode)
    await this.#deps.webhooks.recordAttempt(d.id, { at: at.toISOString(), statusCode: answer.statusCode, durationMs, error: answer.error }, outcome)
    if (result === 'gone') {
      await this.#deps.webhooks.disableWebhook(d.webhook, `the receiver answered 410 Gone at ${at.toISOString()}`, at.toISOString())
    }
    this.#deps.logger[result === 'delivered' ? 'debug' : 'warn']({
      webhook: d.webhook, deliveryId: d.id, statusCode: answer.statusCode, error: answer.error, durationMs, result
    }, 'webhook attempt')
    this.#deps.onDelivery?.(d.webhook, result)
  }

  async #send (d: DueDelivery, at: Date): Promise<SendResult> {
    // The policy again, as it is now: the configuration or the name's addresses may have changed since registration.
    const refusal = await configUrlRefusal(d.url, this.#deps.policy, this.#deps.lookup ?? systemLookup)
    if (refusal !== undefined) return { error: `refused: ${refusal}` }
    const signal = AbortSignal.any([this.#stop.signal, AbortSignal.timeout(this.#deps.timeoutMs)])
    const answer = await this.#deps.send(d.url, signedHeaders(d.secret, d.id, d.body, at), d.body, signal)
    if (answer.error !== undefined && !this.#stop.signal.aborted && signal.aborted) {
      return { error: `no answer within ${this.#deps.timeoutMs} ms` }
    }
    return answer
  }

  #judge (d: DueDelivery, statusCode: number | undefined): { outcome: AttemptOutcome, result: DeliveryResult } {
    if (statusCode !== undefined && statusCode >= 200 && statusCode < 300) return { outcome: { state: 'delivered' }, result: 'delivered' }
    if (statusCode === 410) return { outcome: { state: 'failed' }, result: 'gone' }
    const tries = d.tries + 1
    const delay = retryDelayMs(this.#deps.retrySeconds, tries, this.#deps.random)
    if (delay === undefined) return { outcome: { state: 'failed' }, result: 'failed' }
    const nextAttemptAt = new Date(this.#deps.now().getTime() + delay).toISOString()
    return { outcome: { state: 'pending', tries, nextAttemptAt }, result: 'retrying' }
  }
}
