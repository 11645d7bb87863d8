import type { LogFrame, LogStream } from '../executor/executor.js'
import type { Marks, StreamMark } from '../logs/log-store.js'

// Which frames of the engine's log are new to the build's log. Each snapshot
// the pump reads repeats frames it has kept before (it starts a little before
// the newest one); within one stream the engine's timestamps never go
// backwards, so a frame older than the stream's last kept one is a repeat,
// and of the frames that share the last kept timestamp (the pieces of a long
// line share one) the first n are, n being how many were kept.
// Stdout and stderr are judged apart: in the engine's file they interleave
// in the order they were written, not in timestamp order.

/** A piece of a line longer than this is written out as a line of its own. */
const MAX_LINE_BYTES = 1024 * 1024

const toNs = (ts: string) => {
  const dot = ts.indexOf('.')
  const seconds = BigInt(Math.floor(Date.parse(ts.slice(0, dot < 0 ? -1 : dot) + 'Z') / 1000))
  return seconds * 1_000_000_000n + BigInt(dot < 0 ? 0 : ts.slice(dot + 1, -1).padEnd(9, '0'))
}
const engineTime = (ns: bigint) => `${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`

interface Track {
  mark?: StreamMark
  /** The mark as of the last complete line: what a checkpoint may promise. */
  committed?: StreamMark
  /** Frames with the mark's timestamp seen in this snapshot. */
  seen: number
  pieces: Buffer[]
  pieceBytes: number
}

export class FrameFilter {
  readonly #tracks: Record<LogStream, Track>
  #anchor: { stream: LogStream, ts: string } | undefined
  #covered = true

  constructor (marks: Marks = {}) {
    const track = (mark?: StreamMark): Track => ({ mark, committed: mark, seen: 0, pieces: [], pieceBytes: 0 })
    this.#tracks = { stdout: track(marks.stdout), stderr: track(marks.stderr) }
  }

  /**
   * A snapshot begins. It must reach back to the newest frame kept so far
   * (the anchor); until it has, a new frame means the engine no longer has
   * what lay between.
   */
  begin () {
    const marks = (['stdout', 'stderr'] as const).filter((s) => this.#tracks[s].mark)
    for (const s of marks) this.#tracks[s].seen = 0
    const newest = marks.sort((a, b) => this.#tracks[a].mark!.ts < this.#tracks[b].mark!.ts ? 1 : -1)[0]
    this.#anchor = newest && { stream: newest, ts: this.#tracks[newest].mark!.ts }
    this.#covered = !this.#anchor
  }

  /**
   * Where the snapshot starts ("seconds.nanoseconds", inclusive): at the
   * older stream's last frame kept (from the start while a stream has none).
   * Not later: the engine stamps a line when it reads it and may write one
   * stream's line to its file after a newer line of the other (measured:
   * more than 100 ms on 2 busy cores). A quiet stream makes the snapshot
   * repeat more, but no more than the newest lines asked for (log-pump.ts).
   */
  since (): string | undefined {
    const { stdout, stderr } = this.#tracks
    if (!stdout.mark || !stderr.mark) return undefined
    return engineTime(toNs(stdout.mark.ts < stderr.mark.ts ? stdout.mark.ts : stderr.mark.ts))
  }

  /** Whether this snapshot has reached the anchor (always, before anything was kept). */
  get covered () {
    return this.#covered
  }

  /** The timestamp of the newest frame kept before this snapshot. */
  get anchor () {
    return this.#anchor?.ts
  }

  /** Counts the frame; true when it is new to the build's log. */
  isNew (frame: LogFrame): boolean {
    const track = this.#tracks[frame.stream]
    if (this.#anchor?.stream === frame.stream && frame.ts <= this.#anchor.ts) this.#covered = true
    const mark = track.mark
    if (!mark || frame.ts > mark.ts) return true
    if (frame.ts < mark.ts) return false
    return ++track.seen > mark.n
  }

  /** Gives up on reaching the anchor: what lay between is lost, the rest is new. */
  cover () {
    this.#covered = true
  }

  /** Keeps a new frame; returns the line it completes, if any (with its newline, unless cut). */
  keep (frame: LogFrame): Buffer | undefined {
    const track = this.#tracks[frame.stream]
    if (track.mark && frame.ts === track.mark.ts) {
      track.mark = { ts: frame.ts, n: track.mark.n + 1 }
      track.seen = track.mark.n
    } else {
      track.mark = { ts: frame.ts, n: 1 }
      track.seen = 1
    }
    const ends = frame.data.length > 0 && frame.data[frame.data.length - 1] === 0x0a
    if (ends && track.pieces.length === 0) {
      track.committed = track.mark
      return frame.data
    }
    // Copied: a view would pin the engine's whole chunk while the line waits for its rest.
    track.pieces.push(Buffer.from(frame.data))
    track.pieceBytes += frame.data.length
    if (!ends && track.pieceBytes < MAX_LINE_BYTES) return undefined
    return this.#flush(track)
  }

  /** The pieces of an unfinished line of `stream`, as a line (its end was lost). */
  flush (stream: LogStream): Buffer | undefined {
    const track = this.#tracks[stream]
    return track.pieces.length ? this.#flush(track) : undefined
  }

  #flush (track: Track) {
    const line = Buffer.concat(track.pieces)
    track.pieces = []
    track.pieceBytes = 0
    track.committed = track.mark
    return line
  }

  /** What everything written so far covers: a resume continues after it. */
  committed (): Marks {
    const out: Marks = {}
    for (const s of ['stdout', 'stderr'] as const) {
      const c = this.#tracks[s].committed
      if (c) out[s] = c
    }
    return out
  }
}
