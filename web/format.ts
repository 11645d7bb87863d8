import type { Build } from './types.js'

// Times, durations and sizes as people read them.

export function duration (ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${s % 60}s`
  const h = Math.floor(m / 60)
  return `${h}h ${m % 60}m`
}

export function ago (iso: string, now = Date.now()): string {
  const ms = now - Date.parse(iso)
  return ms < 5000 ? 'just now' : `${duration(ms)} ago`
}

export function bytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = n
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++ }
  return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

export const isFinished = (build: Build) => ['succeeded', 'unchanged', 'failed', 'cancelled'].includes(build.state)

/** How long the build ran (so far), or waited while queued. */
export function runTime (build: Build, now = Date.now()): number | undefined {
  if (build.startedAt === undefined) return undefined
  return (build.finishedAt === undefined ? now : Date.parse(build.finishedAt)) - Date.parse(build.startedAt)
}

export function waitTime (build: Build, now = Date.now()): number {
  const end = build.startedAt ?? build.finishedAt
  return (end === undefined ? now : Date.parse(end)) - Date.parse(build.createdAt)
}

const STATE_WORDS: Record<Build['state'], string> = {
  queued: 'Queued', running: 'Running', succeeded: 'Succeeded', unchanged: 'Unchanged', failed: 'Failed', cancelled: 'Cancelled'
}

/** "Succeeded in 2m 31s", "Running for 40s", "Queued for 5s". */
export function headline (build: Build, now = Date.now()): string {
  const word = STATE_WORDS[build.state]
  if (build.state === 'queued') return `${word} for ${duration(waitTime(build, now))}`
  const run = runTime(build, now)
  if (run === undefined) return word
  return build.state === 'running' ? `${word} for ${duration(run)}` : `${word} in ${duration(run)}`
}

export const stateWord = (state: Build['state']) => STATE_WORDS[state]

const WAITING: Record<string, string> = {
  stream_busy: 'another build of its stream',
  slot: 'a free build slot',
  engine_unavailable: 'a Docker engine of its arch to answer',
  no_engine_for_arch: 'an engine of its arch',
  storage_low: 'free disk space'
}

export function waitingText (build: Build): string | undefined {
  if (build.state !== 'queued') return undefined
  const what = build.waitingFor === undefined ? undefined : WAITING[build.waitingFor] ?? build.waitingFor
  const position = build.queuePosition === undefined ? '' : `#${build.queuePosition} in line`
  return [position, what === undefined ? '' : `waiting for ${what}`].filter(Boolean).join(', ')
}

type ArchRun = NonNullable<Build['arches']>[number]
type Attempt = NonNullable<Build['attempts']>[number]

/** One arch of a multi-arch build: "failed (exit_code) on arm, 43s: the build exited with code 2". */
export function archText (run: ArchRun, now = Date.now()): string {
  const state = run.state === 'waiting' && run.waitingFor ? `waiting for ${WAITING[run.waitingFor] ?? run.waitingFor}` : run.state
  const took = run.startedAt === undefined ? undefined : duration((run.finishedAt === undefined ? now : Date.parse(run.finishedAt)) - Date.parse(run.startedAt))
  return `${state}${run.reason ? ` (${run.reason})` : ''}${run.engine ? ` on ${run.engine}` : ''}${took ? `, ${took}` : ''}${run.message ? `: ${run.message}` : ''}`
}

/** An ended attempt of a retried build: "failed in build (infrastructure) on e1 after 29s: the engine stopped". */
export function attemptText (a: Attempt): string {
  const how = a.state === 'failed' ? `failed${a.failedStep ? ` in ${a.failedStep}` : ''} (${a.reason ?? 'unknown reason'})` : a.state
  const took = a.startedAt === undefined ? '' : ` after ${duration(Date.parse(a.endedAt) - Date.parse(a.startedAt))}`
  return `${how} on ${a.engine ?? 'no engine'}${took}${a.message ? `: ${a.message}` : ''}`
}
