import type { FailureReason } from './build-state.js'
import type { Final } from './lifecycle.js'
import type { Build, BuildAttempt } from './model.js'

// Whether a build whose attempt just ended runs again instead of ending, and
// what the attempt leaves on the build's record. Pure: the lifecycle asks it
// in finish() and writes the answer as one conditional update.
//
// Only `infrastructure` is retried: the engine went away, refused the
// container, or is not configured any more. Those say nothing about the
// build's inputs, and another engine (or the same one, back) may well run
// it; every other reason would fail the same way again. A build whose cancel
// was requested is not run again.

/** The reasons an attempt may be retried for. */
export const RETRIED_REASONS: readonly FailureReason[] = ['infrastructure']

export interface RetryQuestion {
  final: Pick<Final, 'state' | 'reason'>
  /** Attempts of the build that ended before this one. */
  earlier: number
  cancelRequested: boolean
  /** builds.infrastructureRetries. */
  allowed: number
}

export function shouldRetry (q: RetryQuestion): boolean {
  return q.final.state === 'failed' && q.final.reason !== undefined && RETRIED_REASONS.includes(q.final.reason) &&
    !q.cancelRequested && q.earlier < q.allowed
}

/** The record of the attempt that just ended (`build` as stored, before the final write). */
export function endedAttempt (build: Build, final: Final, endedAt: string): BuildAttempt {
  const attempt: BuildAttempt = {
    engine: build.engine,
    arch: build.arch,
    startedAt: build.startedAt,
    endedAt,
    state: final.state,
    reason: final.reason,
    message: final.message,
    failedStep: final.state === 'failed' ? build.phase : undefined
  }
  // Stored as JSON: no keys for what is unset.
  for (const key of Object.keys(attempt) as Array<keyof BuildAttempt>) if (attempt[key] === undefined) delete attempt[key]
  return attempt
}

/** Engines an earlier attempt of the build failed on for a retried reason: placement avoids them while it can. */
export function failedEngines (build: Pick<Build, 'attempts'>): string[] {
  return (build.attempts ?? [])
    .filter((a) => a.engine !== undefined && a.reason !== undefined && RETRIED_REASONS.includes(a.reason))
    .map((a) => a.engine!)
}
