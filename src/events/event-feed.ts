import { Readable } from 'node:stream'
import type { BuildEvent } from '../builds/build-event.js'
import type { BuildLifecycle } from '../builds/lifecycle.js'
import type { Database } from '../store/repositories.js'

// One Server-Sent Events stream: what the outbox holds after `since`, then
// each new event as the lifecycle appends it. Every event is read from the
// outbox (the notification only wakes the reader), so a reader that resumes
// after seq N gets N+1, N+2… with no gap and no repeat, across restarts too.

const PAGE = 500

export interface FeedFilter {
  stream?: string | undefined
  build?: string | undefined
}

export interface FeedOptions {
  heartbeatMs: number
  retryMs: number
}

export const formatEvent = (e: BuildEvent) => `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`

const matches = (e: BuildEvent, f: FeedFilter) =>
  (f.stream === undefined || e.stream === f.stream) && (f.build === undefined || e.buildId === f.build)

export class EventFeed {
  readonly #store: Database
  readonly #lifecycle: BuildLifecycle
  readonly #opts: FeedOptions

  constructor (deps: { store: Database, lifecycle: BuildLifecycle } & FeedOptions) {
    this.#store = deps.store
    this.#lifecycle = deps.lifecycle
    this.#opts = { heartbeatMs: deps.heartbeatMs, retryMs: deps.retryMs }
  }

  /** The stream's text, until `signal` aborts. */
  open (since: number, filter: FeedFilter, signal: AbortSignal) {
    return Readable.from(this.#run(since, filter, signal), { objectMode: false })
  }

  async * #run (since: number, filter: FeedFilter, signal: AbortSignal) {
    let last = since
    let pending = true
    let beat = false
    let wake: (() => void) | undefined
    const poke = () => { wake?.(); wake = undefined }
    const unsubscribe = this.#lifecycle.subscribe((e) => {
      if (e.seq > last && matches(e, filter)) { pending = true; poke() }
    })
    const timer = setInterval(() => { beat = true; poke() }, this.#opts.heartbeatMs).unref()
    signal.addEventListener('abort', poke, { once: true })
    try {
      // Sent at once: the answer's headers go out now, and EventSource learns when to come back.
      yield `retry: ${this.#opts.retryMs}\n\n`
      while (!signal.aborted) {
        if (pending) {
          pending = false
          for (let page = await this.#page(last, filter); page.length; page = await this.#page(last, filter)) {
            yield page.map(formatEvent).join('')
            last = page.at(-1)!.seq
            if (page.length < PAGE) break
          }
        }
        if (beat) { beat = false; yield ': heartbeat\n\n' }
        if (!pending && !beat && !signal.aborted) await new Promise<void>((resolve) => { wake = resolve })
      }
    } finally {
      unsubscribe()
      clearInterval(timer)
      signal.removeEventListener('abort', poke)
    }
  }

  #page (after: number, filter: FeedFilter) {
    return this.#store.events.eventsAfter(after, { limit: PAGE, ...filter })
  }
}
