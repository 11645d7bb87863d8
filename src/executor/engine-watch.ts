import type { Executor } from './executor.js'

// Watching an engine that may stop answering at any moment: a build's wait
// must learn that the engine died, and tell "the engine went away" from "the
// job ended" before it decides anything.

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref())

/** Pings the engine every `everyMs` while a wait is open; `lost` aborts when it stops answering. */
export function watchEngine (engine: Pick<Executor, 'ping'>, everyMs: number, signal: AbortSignal) {
  const lost = new AbortController()
  const timer = setInterval(() => {
    if (signal.aborted) return
    engine.ping().catch(() => lost.abort())
  }, everyMs)
  timer.unref()
  return { lost: lost.signal, stop: () => clearInterval(timer) }
}

/** True when the engine stops answering within `windowMs`. */
export async function engineGoesAway (engine: Pick<Executor, 'ping'>, windowMs: number, signal: AbortSignal) {
  const until = Date.now() + windowMs
  while (Date.now() < until && !signal.aborted) {
    try {
      await engine.ping()
    } catch {
      return true
    }
    await pause(250)
  }
  return false
}

/**
 * Inspects until the engine answers, or the signal ends the attempt.
 * `unreachable` says whether the engine was down meanwhile.
 */
export async function inspectPatiently (engine: Pick<Executor, 'inspect'>, jobId: string, signal: AbortSignal) {
  let unreachable = false
  for (let delay = 250; !signal.aborted; delay = Math.min(delay * 2, 5000)) {
    try {
      const state = await engine.inspect(jobId)
      return { state: state ?? 'gone' as const, unreachable }
    } catch {
      unreachable = true
      await pause(delay)
    }
  }
  return { state: 'unknown' as const, unreachable }
}
