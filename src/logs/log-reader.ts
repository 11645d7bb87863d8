import type { EventEmitter } from 'node:events'
import { Readable } from 'node:stream'
import { READ_BYTES, wakeOrTimeout, type IsDone } from './log-store.js'

/** How a store gives a log's bytes to a reader: what is there, and a piece of it. */
export interface LogSource {
  /** The log's length now. */
  end: () => Promise<number>
  /** Up to `max` bytes from `position` (fewer at the end). */
  readAt: (position: number, max: number) => Promise<Buffer>
  close?: () => Promise<void>
}

export interface ReadOptions {
  offset: number
  follow: boolean
  isDone: IsDone
  signal: AbortSignal
  /** Emits the build's id when this process writes to its log. */
  writes: EventEmitter
  buildId: string
  /** How long a follower waits for a write it may not hear of (another process's) before looking again. */
  pollMs: number
  /**
   * Once the build is done, how long to look for a last line written by
   * another process (the supervisor notes how the build ended just after
   * recording it). 0 when only this process writes.
   */
  settleMs?: number
}

/**
 * The log from `offset`, as bytes; with `follow`, keeps streaming until
 * `isDone()` holds and everything written has been sent. Either store reads
 * through this, so both follow the same way.
 */
export function readLog (open: () => Promise<LogSource>, opts: ReadOptions): Readable {
  const { writes, buildId, signal } = opts
  async function * chunks () {
    const source = await open()
    // One listener for the follower's life; a write between looking and
    // waiting is not missed.
    let written = false
    let wake = () => {}
    const onWrite = () => { written = true; wake() }
    writes.on(buildId, onWrite)
    try {
      let position = opts.offset
      let settled = !opts.settleMs
      while (!signal.aborted) {
        written = false
        const end = await source.end()
        if (end > position) {
          // Sized to what is there: most wake-ups find a few lines, not 64 KiB.
          const buf = await source.readAt(position, Math.min(READ_BYTES, end - position))
          if (buf.length === 0) return
          position += buf.length
          yield buf
          continue
        }
        if (!opts.follow) return
        if (await opts.isDone()) {
          if (await source.end() > position) continue
          if (settled) return
          settled = true
          await wakeOrTimeout((w) => { wake = w }, signal, opts.settleMs!)
          continue
        }
        // Woken by this process's writer, or by the timer: another process's writes, or a restart.
        if (!written) await wakeOrTimeout((w) => { wake = w }, signal, opts.pollMs)
      }
    } finally {
      writes.off(buildId, onWrite)
      await source.close?.()
    }
  }
  // Bytes, not objects: a follower that reads slowly holds one buffer of
  // its own, whatever the log's size.
  return Readable.from(chunks(), { objectMode: false, highWaterMark: READ_BYTES })
}
