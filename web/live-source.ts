import { poll, type Build, type BuildList } from './api.js'

// Where the pages learn that builds changed. The shape is that of the event
// stream (GET /v1/events: `event:` a type, `data:` {seq, type, buildId,
// stream, time, build}); until the server has it, this module polls the
// build list and single builds with ETags (a 304 when nothing changed) and
// derives the same events. Moving to SSE changes this file only.

export type BuildEventType = 'build.queued' | 'build.started' | 'build.phase' | 'build.finished' | 'build.cancel_requested'

export interface BuildEvent {
  seq: number
  type: BuildEventType
  buildId: string
  stream: string
  time: string
  build: Build
}

export interface LiveFilter {
  stream?: string
  build?: string
}

export type LiveStatus = 'connecting' | 'live' | 'reconnecting'

export interface Subscription { close: () => void }

const POLL_MS = 1500
const FINISHED = new Set(['succeeded', 'unchanged', 'failed', 'cancelled'])

/** The event a change from `before` to `after` amounts to, if any. */
export function eventType (before: Build | undefined, after: Build): BuildEventType | undefined {
  if (before === undefined) return FINISHED.has(after.state) ? 'build.finished' : after.state === 'running' ? 'build.started' : 'build.queued'
  if (before.state !== after.state) {
    if (FINISHED.has(after.state)) return 'build.finished'
    return after.state === 'running' ? 'build.started' : 'build.queued'
  }
  if (before.cancelRequestedAt === undefined && after.cancelRequestedAt !== undefined) return 'build.cancel_requested'
  if (before.phase !== after.phase || before.queuePosition !== after.queuePosition || before.pinned !== after.pinned) return 'build.phase'
  return undefined
}

function pathOf (filter: LiveFilter) {
  if (filter.build !== undefined) return `/v1/builds/${encodeURIComponent(filter.build)}`
  return '/v1/builds?limit=50' + (filter.stream === undefined ? '' : `&stream=${encodeURIComponent(filter.stream)}`)
}

/**
 * Calls `onEvent` for each build that changes, starting with the state at
 * the first poll (a page's own first fetch may be older: pages apply events
 * by build id, so a repeat is harmless and a change is never missed), and
 * `onStatus` as the source connects, fails and recovers.
 */
export function subscribe (filter: LiveFilter, onEvent: (event: BuildEvent) => void,
  onStatus: (status: LiveStatus) => void = () => {}): Subscription {
  const known = new Map<string, Build>()
  let seq = 0
  let stopped = false
  let timer: ReturnType<typeof setTimeout> | undefined
  const path = pathOf(filter)

  async function tick () {
    try {
      const { body, changed } = await poll<Build | BuildList>(path)
      const builds = 'builds' in body ? body.builds : [body]
      if (changed) {
        for (const build of builds) {
          const type = eventType(known.get(build.id), build)
          known.set(build.id, build)
          if (type !== undefined) onEvent({ seq: ++seq, type, buildId: build.id, stream: build.stream, time: new Date().toISOString(), build })
        }
      }
      onStatus('live')
    } catch {
      onStatus('reconnecting')
    }
    if (!stopped) timer = setTimeout(() => { void tick() }, POLL_MS)
  }
  onStatus('connecting')
  void tick()
  return { close: () => { stopped = true; clearTimeout(timer) } }
}
