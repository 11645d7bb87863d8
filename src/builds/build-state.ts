import { z } from 'zod'

// The build lifecycle's one transition table. src/builds/lifecycle.ts checks
// every move against it and writes it as a conditional update in the store
// (`... WHERE state IN (from)`), so of two racing writers exactly one wins and
// a terminal state, once written, is never overwritten.

export const buildStates = ['queued', 'running', 'succeeded', 'unchanged', 'failed', 'cancelled'] as const
export const BuildState = z.enum(buildStates)
export type BuildState = z.infer<typeof BuildState>

export const terminalStates: readonly BuildState[] = ['succeeded', 'unchanged', 'failed', 'cancelled']

const transitions: Record<BuildState, readonly BuildState[]> = {
  queued: ['running', 'cancelled', 'failed'],
  // running -> queued only when the service stopped before the build's
  // container existed: nothing ran, so the build is simply run again.
  running: ['succeeded', 'unchanged', 'failed', 'cancelled', 'queued'],
  succeeded: [],
  unchanged: [],
  failed: [],
  cancelled: []
}

export const canMove = (from: BuildState, to: BuildState) => transitions[from].includes(to)

/** The states a build may be in for `to` to be a legal next state. */
export const sourcesOf = (to: BuildState): BuildState[] =>
  buildStates.filter((from) => transitions[from].includes(to))

export const isTerminal = (state: BuildState) => terminalStates.includes(state)

export const failureReasons = [
  'exit_code', // a cosa step exited non-zero
  'oom', // the kernel OOM-killed a process in the container
  'timeout', // the stream's timeoutSeconds passed
  'infrastructure', // the engine failed or refused the container
  'invalid_result', // exit 0 without a valid posted result
  'config_unavailable', // the config repository or ref could not be resolved
  'image_unavailable', // the builder image is not on the engine
  'invalid_settings', // the stream's settings or the build's request cannot run (resources beyond the engine, a version the store has)
  'lost', // the container vanished while the build ran
  'publish_failed', // the build's artifacts could not be stored (store down, full, or not as meta.json says)
  'boot_test' // the image did not pass the boot test of a stream whose bootTest mode is gate
] as const
export const FailureReason = z.enum(failureReasons)
export type FailureReason = z.infer<typeof FailureReason>
