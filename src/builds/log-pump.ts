import { isUtf8 } from 'node:buffer'
import { whileDatabaseAway } from '../store/database-retry.js'
import type { Logger } from '../logger.js'
import type { Executor, LogFrame } from '../executor/executor.js'
import type { LogStore, LogWriter, Marks } from '../logs/log-store.js'
import { FrameFilter } from './frame-filter.js'
import { sanitizeLine } from './log-sanitizer.js'

// Copies a build job's log into the build's log, exactly once and in
// order. It reads snapshots of the engine's log (a request that is not
// followed) rather than following it: Docker 20.10's follow re-sends a
// rotated-in file from its start and skips whole files when its reader falls
// behind (see docs/reliability.md, "Build logs"), while a snapshot is read
// from the engine's files as they are, under its lock. Each snapshot starts
// at the newest line kept (frame-filter.ts drops what was kept before); the
// body is read at the pace the disk takes it, so memory does not grow with
// the log or with a slow disk. A snapshot that no longer reaches the newest
// line kept means the engine rotated lines away before they were read: the
// log says so at that place.

/** Output lost because the engine rotated it away before it was read: for a metrics endpoint to export. */
export const logLoss = { events: 0 }

/**
 * Snapshots ask for at least this many of the newest lines (the engine reads
 * them from the end of its file, so a quiet build costs it little); one
 * that falls short asks for ten times as many, then for the whole log.
 */
const MIN_TAIL = 200
const MAX_TAIL = 100_000
const CHECKPOINT_MS = 500
/** While the job is gone or the engine away, finishing gives up after this long without an answer (unless told otherwise). */
const FINISH_PATIENCE_MS = 30_000

/** Where a job's log is read. */
export type LogSource = Pick<Executor, 'logSnapshot'>

export interface LogPumpDeps {
  logs: LogStore
  logger: Logger
  /** Pause between snapshots that found nothing new. */
  pollMs: number
  /** A snapshot whose answer stalls this long (the engine went away mid-answer) is given up and retried. */
  stallMs: number
}

export interface CopyOptions {
  /** Applied to every line before it is kept. */
  redact?: ((line: string) => string) | undefined
  /** Hears each step marker the build script prints (`==> cosa …`), as kept. */
  onStep?: ((line: string) => void) | undefined
  /** Asked before each write: false stops the copy, writing nothing more (its supervisor's lease lapsed). */
  mayWrite?: (() => boolean) | undefined
}

const STEP_MARK = Buffer.from('==> cosa ')

export interface LogCopy {
  /** Settles once copying has stopped (never rejects). */
  done: Promise<void>
  /**
   * The job has ended: copy what is left of its log, then stop; give up
   * after `patienceMs` of failed reads (an engine known to be gone).
   */
  finish: (patienceMs?: number) => Promise<void>
}

export class LogPump {
  readonly #deps: LogPumpDeps

  constructor (deps: LogPumpDeps) {
    this.#deps = deps
  }

  /** Copies until `signal` aborts or, after finish(), the engine's log has nothing more. */
  start (buildId: string, source: LogSource, jobId: string, signal: AbortSignal, opts: CopyOptions = {}): LogCopy {
    const copy = new Copy(this.#deps, buildId, { source, jobId }, signal, opts)
    const done = copy.run().catch((err) => {
      if (!signal.aborted) this.#deps.logger.warn({ err, buildId }, 'copying the build log failed')
    })
    return { done, finish: (patienceMs = FINISH_PATIENCE_MS) => { copy.finishing(patienceMs); return done } }
  }
}

class Copy {
  readonly #deps: LogPumpDeps
  readonly #buildId: string
  readonly #job: { source: LogSource, jobId: string }
  readonly #signal: AbortSignal
  readonly #redact: ((line: string) => string) | undefined
  readonly #mayWrite: (() => boolean) | undefined
  /** Stopped by mayWrite: another replica may write this log now, its checkpoint too. */
  #fenced = false
  readonly #onStep: ((line: string) => void) | undefined
  #filter = new FrameFilter()
  /** The marks of what has reached the file: a failed snapshot starts again from them. */
  #safe: Marks | undefined
  #writer: LogWriter | undefined
  #tail: number | undefined
  #finishing = false
  #patienceMs = FINISH_PATIENCE_MS
  #wake = new AbortController()
  #checkpointAt = 0

  constructor (deps: LogPumpDeps, buildId: string, job: { source: LogSource, jobId: string }, signal: AbortSignal, opts: CopyOptions) {
    this.#deps = deps
    this.#buildId = buildId
    this.#job = job
    this.#signal = signal
    this.#redact = opts.redact
    this.#onStep = opts.onStep
    this.#mayWrite = opts.mayWrite
  }

  finishing (patienceMs: number) {
    this.#patienceMs = patienceMs
    this.#finishing = true
    this.#wake.abort()
  }

  /** Where the log resumes, and its writer; a database that does not answer is asked again while the log may be written. */
  async #open () {
    return whileDatabaseAway(async () => {
      this.#safe = await this.#deps.logs.resume(this.#buildId)
      return this.#deps.logs.open(this.#buildId, this.#safe, { signal: this.#signal, mayWrite: this.#mayWrite })
    }, () => !this.#signal.aborted && this.#mayWrite?.() !== false, this.#signal)
  }

  async run () {
    this.#writer = await this.#open()
    this.#filter = new FrameFilter(this.#safe)
    let failingSince: number | undefined
    try {
      while (!this.#signal.aborted && !this.#fenced) {
        let more: boolean
        try {
          more = await this.#snapshot()
          failingSince = undefined
        } catch (err) {
          this.#filter = new FrameFilter(this.#safe)
          if (this.#signal.aborted) break
          failingSince ??= Date.now()
          if (this.#finishing && Date.now() - failingSince >= this.#patienceMs) throw err
          this.#deps.logger.debug({ err, buildId: this.#buildId }, 'reading the build log failed; retrying')
          await this.#pause(Math.min(5000, 250 + (Date.now() - failingSince) / 4), false)
          continue
        }
        if (more) continue
        if (this.#finishing) break
        await this.#pause(this.#deps.pollMs, true)
      }
    } finally {
      if (!this.#fenced) await this.#writer.checkpoint(this.#safe ?? {}).catch(() => undefined)
      await this.#writer.close()
    }
  }

  /** Waits `ms`; `wakeable`: finish() ends the wait early. */
  #pause (ms: number, wakeable: boolean) {
    return new Promise<void>((resolve) => {
      const signal = wakeable ? AbortSignal.any([this.#signal, this.#wake.signal]) : this.#signal
      if (signal.aborted) return resolve()
      const done = () => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /** Reads one snapshot of the engine's log; true when it should be read again at once. */
  async #snapshot (): Promise<boolean> {
    const filter = this.#filter
    filter.begin()
    // Before anything is kept there is nothing to reach back to: read it all.
    const tail = filter.anchor === undefined ? undefined : this.#tail
    const abort = new AbortController()
    const snapshot = await this.#job.source.logSnapshot(this.#job.jobId, { since: filter.since(), tail },
      AbortSignal.any([this.#signal, abort.signal]))
    let kept = 0
    try {
      for await (const frames of stalling(snapshot, this.#deps.stallMs, abort)) {
        const out: Buffer[] = []
        for (const frame of frames) {
          if (!filter.isNew(frame)) continue
          if (!filter.covered) {
            // Not in the newest lines asked for: ask for more.
            if (tail !== undefined) return this.#widen(tail)
            out.push(this.#lost(frame))
          }
          kept++
          const line = filter.keep(frame)
          if (!line) continue
          const rendered = this.#render(line)
          out.push(rendered)
          if (this.#onStep && rendered.subarray(0, STEP_MARK.length).equals(STEP_MARK)) this.#onStep(rendered.toString('utf8').trimEnd())
        }
        if (out.length) await this.#write(out.length === 1 ? out[0]! : Buffer.concat(out))
      }
    } finally {
      abort.abort()
    }
    // Room for as many new lines as this look found, twice over, before the
    // next look (the engine reads only these from the end of its file).
    this.#tail = Math.max(MIN_TAIL, kept * 2)
    return kept > 0
  }

  #widen (tail: number) {
    this.#tail = tail * 10 > MAX_TAIL ? undefined : tail * 10
    return true
  }

  /** The note that stands where the engine no longer had the container's output. */
  #lost (frame: LogFrame) {
    const from = this.#filter.anchor
    this.#filter.cover()
    logLoss.events++
    this.#deps.logger.warn({ buildId: this.#buildId, from, to: frame.ts },
      'build log output was lost: the Docker engine rotated it away before it was read')
    const cut = [this.#filter.flush('stdout'), this.#filter.flush('stderr')].flatMap((l) => l ? [this.#render(l)] : [])
    return Buffer.concat([...cut, Buffer.from(`==> cosa-buildd: output of the build container between ${from} and ${frame.ts} ` +
      'was lost: the Docker engine rotated it out of its log (builds.logFiles × builds.logFileBytes) before it was read\n')])
  }

  /** The line as the log keeps it: sanitized, redacted, ending in a newline. */
  #render (line: Buffer): Buffer {
    const ends = line[line.length - 1] === 0x0a
    // Most lines are valid UTF-8 without a control character: their bytes
    // are the result, without a string made of them.
    if (!this.#redact && isUtf8(line) && !hasControl(line, ends ? line.length - 1 : line.length)) {
      return ends ? line : Buffer.concat([line, NEWLINE])
    }
    const clean = sanitizeLine(line.toString('utf8', 0, ends ? line.length - 1 : line.length))
    return Buffer.from((this.#redact ? this.#redact(clean) : clean) + '\n')
  }

  async #write (text: Buffer) {
    if (this.#fenced || this.#mayWrite?.() === false) {
      this.#fenced = true
      return
    }
    const marks = this.#filter.committed()
    await this.#writer!.write(text)
    this.#safe = marks
    if (Date.now() - this.#checkpointAt < CHECKPOINT_MS) return
    this.#checkpointAt = Date.now()
    await this.#writer!.checkpoint(marks)
  }
}

const NEWLINE = Buffer.from('\n')

/** Whether the first `end` bytes hold a byte sanitizeLine would act on (a C0 control but tab, DEL, or U+009B). */
function hasControl (line: Buffer, end: number) {
  for (let i = 0; i < end; i++) {
    const b = line[i]!
    if ((b < 0x20 && b !== 0x09) || b === 0x7f || (b === 0xc2 && line[i + 1] === 0x9b)) return true
  }
  return false
}

/**
 * The snapshot's batches, read one at a time; a wait on the engine longer than
 * `ms` (an engine that died mid-answer leaves it open) ends it with an error.
 * Time spent by the reader does not count.
 */
async function * stalling<T> (raw: AsyncIterable<T> & { destroy: (err?: Error) => void }, ms: number, abort: AbortController) {
  const iterator = raw[Symbol.asyncIterator]()
  for (;;) {
    const timer = setTimeout(() => {
      abort.abort()
      raw.destroy(new Error(`the Docker engine stopped sending the log for ${ms} ms`))
    }, ms)
    let next: IteratorResult<T>
    try {
      next = await iterator.next()
    } finally {
      clearTimeout(timer)
    }
    if (next.done) return
    yield next.value
  }
}
