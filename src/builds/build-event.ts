import type { Build } from './model.js'

// What the outbox holds: one event per change of a build, numbered in the
// order the changes were committed. The event stream (GET /v1/events) and
// whatever else tells the world (webhooks, metrics) read from it, so an event
// is never lost across restarts and never told twice to a reader that
// remembers the last sequence number it saw.

export const eventTypes = [
  'build.queued',
  'build.started',
  'build.phase',
  'build.cancel_requested',
  'build.requeued',
  'build.finished'
] as const
export type BuildEventType = typeof eventTypes[number]

/** A build as GET /v1/builds/{id} shows it, less what changes without an event (queue position, pin). */
export type PublicBuild = Omit<Build, 'seq'>

export interface BuildEvent {
  /** The outbox sequence number: strictly increasing, never reused. */
  seq: number
  type: BuildEventType
  buildId: string
  stream: string
  time: string
  build: PublicBuild
}

/** What the lifecycle asks the store to append with a change. */
export interface EventDraft {
  type: BuildEventType
  time: string
}

/** The build without its row number or unset fields: the same object whether just written or read back. */
export function publicBuild (build: Build): PublicBuild {
  const { seq: _seq, ...rest } = build
  for (const key of Object.keys(rest) as Array<keyof PublicBuild>) if (rest[key] === undefined) delete rest[key]
  return rest
}
