import { poll, postJson, token, type Build, type BuildList } from './api.js'
import { eventTypes, type BuildEvent, type BuildEventType } from './types.js'

// Where the pages learn that builds changed: the event stream, GET /v1/events
// (docs/events.md), through the browser's EventSource.
//
// - Auth: EventSource cannot send headers, so with a token the stream is
//   opened with a short-lived read-only one from POST /v1/event-tokens in
//   `?token=`; the long-lived token never goes in a URL. A server with no
//   tokens needs none.
// - No lost change: EventSource reconnects by itself with Last-Event-ID (the
//   outbox seq). When it gives up (the server refused it, e.g. a 401 once
//   the minted token expired), or the connection drops with the token near
//   its expiry, a new EventSource with a fresh token resumes with `?since=`
//   the last seq seen.
// - Events carry no queuePosition, waitingFor or pinned (they move without an
//   event of the build). Those come from an ETag poll of the page's path (a
//   304 when nothing changed): once at each (re)connect, which also covers a
//   change between the page's first fetch and the stream's start; after each
//   event that moves a queue (`queue: true`); every few seconds while the one
//   build shown waits in the queue. A running build is never polled.

export type { BuildEvent } from './types.js'

export interface LiveFilter {
  stream?: string
  build?: string
  /** Replay the outbox after this seq first (0: the build's whole history). */
  since?: number
  /** Refresh queue positions after events that move the queue (list pages). */
  queue?: boolean
}

export type LiveStatus = 'connecting' | 'live' | 'reconnecting'

export interface Subscription { close: () => void }

/** Called with a build as it is now; `event` when the change came from the stream, absent after a refresh. */
export type OnBuild = (build: Build, event?: BuildEvent) => void

const REOPEN_MS = 3000
const QUEUED_POLL_MS = 5000
const REFRESH_DEBOUNCE_MS = 300
/** Mint a new token for a reconnect when the current one has less than this left. */
const TOKEN_MARGIN_MS = 30_000
const QUEUE_MOVES = new Set<BuildEventType>(['build.queued', 'build.started', 'build.requeued', 'build.finished'])

function refreshPath (filter: LiveFilter) {
  if (filter.build !== undefined) return `/v1/builds/${encodeURIComponent(filter.build)}`
  return '/v1/builds?limit=50' + (filter.stream === undefined ? '' : `&stream=${encodeURIComponent(filter.stream)}`)
}

async function streamUrl (filter: LiveFilter, since: number | undefined) {
  const q = new URLSearchParams()
  if (filter.stream !== undefined) q.set('stream', filter.stream)
  if (filter.build !== undefined) q.set('build', filter.build)
  if (since !== undefined) q.set('since', String(since))
  let expires = Infinity
  if (token.get() !== undefined) {
    const minted = await postJson<{ token: string, expiresAt: string }>('/v1/event-tokens')
    q.set('token', minted.token)
    expires = Date.parse(minted.expiresAt)
  }
  return { url: `/v1/events?${q.toString()}`, expires }
}

/**
 * Calls `onBuild` for each change of a build the filter selects, in the
 * order the server made them, and `onStatus` as the stream connects, drops
 * and comes back.
 */
export function subscribe (filter: LiveFilter, onBuild: OnBuild, onStatus: (status: LiveStatus) => void = () => {}): Subscription {
  const live = new LiveBuilds(filter, onBuild, onStatus)
  void live.open()
  return { close: () => live.close() }
}

class LiveBuilds {
  readonly #filter: LiveFilter
  readonly #onBuild: OnBuild
  readonly #onStatus: (status: LiveStatus) => void
  readonly #known = new Map<string, Build>()
  /** Per build, the number of the last event applied: a refresh older than it is stale. */
  readonly #lastEvent = new Map<string, number>()
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  #events = 0
  #lastSeq: number | undefined
  #source: EventSource | undefined
  #expires = Infinity
  #stopped = false
  #refreshing = false
  #refreshPending = false

  constructor (filter: LiveFilter, onBuild: OnBuild, onStatus: (status: LiveStatus) => void) {
    this.#filter = filter
    this.#onBuild = onBuild
    this.#onStatus = onStatus
    this.#lastSeq = filter.since
  }

  close () {
    this.#stopped = true
    this.#source?.close()
    for (const timer of this.#timers) clearTimeout(timer)
  }

  #later (fn: () => void, ms: number) {
    const timer = setTimeout(() => { this.#timers.delete(timer); if (!this.#stopped) fn() }, ms)
    this.#timers.add(timer)
  }

  /** The fields events lack, from the last refresh. */
  #complete (build: Build): Build {
    const before = this.#known.get(build.id)
    const queued = build.state === 'queued' && before?.state === 'queued'
    return {
      ...build,
      ...(before?.pinned === undefined ? {} : { pinned: before.pinned }),
      ...(queued ? { queuePosition: before.queuePosition, waitingFor: before.waitingFor } : {})
    }
  }

  async #refresh () {
    if (this.#refreshing || this.#stopped) return
    this.#refreshing = true
    const startedAt = this.#events
    let stale = false
    try {
      const { body } = await poll<Build | BuildList>(refreshPath(this.#filter))
      for (const build of 'builds' in body ? body.builds : [body]) {
        if ((this.#lastEvent.get(build.id) ?? 0) > startedAt) { stale = true; continue }
        this.#known.set(build.id, build)
        if (!this.#stopped) this.#onBuild(build)
      }
    } catch {
      // The stream's own status tells of a server that is away.
    } finally {
      this.#refreshing = false
    }
    if (stale) this.#refreshSoon()
    const shown = this.#filter.build === undefined ? undefined : this.#known.get(this.#filter.build)
    if (shown?.state === 'queued') this.#later(() => { void this.#refresh() }, QUEUED_POLL_MS)
  }

  #refreshSoon () {
    if (this.#refreshPending) return
    this.#refreshPending = true
    this.#later(() => { this.#refreshPending = false; void this.#refresh() }, REFRESH_DEBOUNCE_MS)
  }

  #receive (message: MessageEvent<string>) {
    const event = JSON.parse(message.data) as BuildEvent
    this.#lastSeq = event.seq
    this.#lastEvent.set(event.buildId, ++this.#events)
    const build = this.#complete(event.build)
    this.#known.set(build.id, build)
    this.#onBuild(build, { ...event, build })
    const { queue, build: one } = this.#filter
    if (QUEUE_MOVES.has(event.type) && (queue === true || (one !== undefined && build.state !== 'running'))) this.#refreshSoon()
  }

  async open () {
    this.#source?.close()
    this.#onStatus(this.#source === undefined ? 'connecting' : 'reconnecting')
    let next
    try {
      next = await streamUrl(this.#filter, this.#lastSeq)
    } catch {
      this.#later(() => { void this.open() }, REOPEN_MS)
      return
    }
    if (this.#stopped) return
    this.#expires = next.expires
    const es = new EventSource(next.url)
    this.#source = es
    for (const type of eventTypes) es.addEventListener(type, (message) => this.#receive(message))
    es.onopen = () => { this.#onStatus('live'); this.#refreshSoon() }
    es.onerror = () => {
      this.#onStatus('reconnecting')
      // EventSource retries by itself (with Last-Event-ID) unless the server
      // refused it; a token about to lapse would be refused on that retry.
      // Either way a new one comes after the same pause as EventSource's own.
      if (es.readyState === EventSource.CLOSED || this.#expires - Date.now() < TOKEN_MARGIN_MS) {
        es.close()
        this.#later(() => { void this.open() }, REOPEN_MS)
      }
    }
  }
}
