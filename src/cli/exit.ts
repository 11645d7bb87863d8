// The CLI's exit statuses, documented in docs/cli.md: scripts branch on them.

export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  cancelled: 3,
  api: 4,
  unverified: 5,
  interrupted: 130
} as const

export class CliError extends Error {
  constructor (message: string, readonly exitCode: number) {
    super(message)
    this.name = 'CliError'
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage)

export const FINAL_STATES = ['succeeded', 'unchanged', 'failed', 'cancelled'] as const

export const isFinal = (state: string) => (FINAL_STATES as readonly string[]).includes(state)

/** A finished build's outcome as an exit status. */
export function exitFor (state: string) {
  if (state === 'succeeded' || state === 'unchanged') return EXIT.ok
  return state === 'cancelled' ? EXIT.cancelled : EXIT.failed
}
