import type { LogFrame, LogStream } from '../executor.js'

// The engine's log answer for a container without a TTY: frames of an 8-byte
// header (stream, 0, 0, 0, big-endian length) and a payload. With timestamps,
// each payload is one message of the engine's log: an RFC 3339 timestamp, a
// space, and a line with its newline, or a piece of a long line without one
// (the engine splits lines at 16 KiB, and each piece carries a timestamp).

const HEADER = 8

/** Splits chunks of the engine's answer into frames; a frame cut between chunks waits for its rest. */
export class LogFrameParser {
  #rest: Buffer | undefined

  * push (chunk: Buffer): Generator<LogFrame> {
    const buf = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk
    this.#rest = undefined
    let at = 0
    while (buf.length - at >= HEADER) {
      const size = buf.readUInt32BE(at + 4)
      if (buf.length - at - HEADER < size) break
      const payload = buf.subarray(at + HEADER, at + HEADER + size)
      const space = payload.indexOf(0x20)
      // stdin (0) never appears in logs; 2 is stderr, anything else stdout.
      const stream: LogStream = buf[at] === 2 ? 'stderr' : 'stdout'
      at += HEADER + size
      if (space < 0) continue
      yield { stream, ts: payload.toString('latin1', 0, space), data: payload.subarray(space + 1) }
    }
    // Copied: a view would pin the whole chunk until the next one arrives.
    if (at < buf.length) this.#rest = Buffer.from(buf.subarray(at))
  }

  /** Bytes of a frame not yet complete: a finished answer should leave none. */
  get pending () {
    return this.#rest?.length ?? 0
  }
}

