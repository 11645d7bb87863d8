import { setTimeout as sleep } from 'node:timers/promises'
import { isDatabaseUnavailable } from '../errors.js'

// One schedule for waiting out a database that does not answer (PostgreSQL
// restarting): tries 100 ms apart at first, doubling up to 2 s, for as long
// as the caller may still act (its lease, its signal).

export const RETRY_FIRST_MS = 100
export const RETRY_MAX_MS = 2000

/** `fn`, tried again while it fails with DatabaseUnavailable and `mayRetry()` holds; a pause ends early on `signal`. */
export async function whileDatabaseAway<T> (fn: () => Promise<T>, mayRetry: () => boolean, signal?: AbortSignal): Promise<T> {
  for (let pause = RETRY_FIRST_MS; ; pause = Math.min(RETRY_MAX_MS, pause * 2)) {
    try {
      return await fn()
    } catch (err) {
      if (!isDatabaseUnavailable(err) || !mayRetry()) throw err
      await sleep(pause, undefined, { signal }).catch(() => undefined)
    }
  }
}
