import type { BuildEvent } from './types.js'

// A build's phases as a timeline, from its events (GET /v1/events?build=&since=0
// replays them all, then the live ones follow): each phase from the event
// that started it to the next one, the last open until the build finishes.

export interface TimelineStep {
  phase: string
  start: string
  /** Absent while the phase runs. */
  end?: string
  failed: boolean
}

export function timeline (events: BuildEvent[]): TimelineStep[] {
  let steps: TimelineStep[] = []
  const close = (time: string) => { const last = steps.at(-1); if (last !== undefined && last.end === undefined) last.end = time }
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    if (e.type === 'build.requeued') steps = [] // the run starts again
    else if (e.type === 'build.started' || e.type === 'build.phase') {
      close(e.time)
      steps.push({ phase: e.build.phase ?? 'preparing', start: e.time, failed: false })
    } else if (e.type === 'build.finished') {
      close(e.time)
      const failed = steps.findLast((s) => s.phase === e.build.failedStep)
      if (e.build.state === 'failed' && failed !== undefined) failed.failed = true
    }
  }
  return steps
}
