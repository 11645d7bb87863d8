import { isDatabaseUnavailable } from '../errors.js'
import { RETRY_FIRST_MS, RETRY_MAX_MS } from '../store/database-retry.js'
import type { LogChunk, LogCheckpoint, LogRepository } from '../store/repositories.js'
import { READ_BYTES, TRUNCATED, type LogWriter, type Marks, type WriterFence } from './log-store.js'

// The writer of one build's log into the database (database-log-store.ts).
// Output gathers for at most `flushMs` (or one chunk's worth), then goes in
// as chunks keyed by their byte offset, with the newest checkpoint asked for
// in the same transaction. While the database does not answer (PostgreSQL
// restarting), output stays here, up to MAX_BUFFERED_BYTES, and the write
// is tried again; past that, writes wait. A write whose commit may have
// gone through before the connection died is settled by the log's length
// before anything is written again, so no line is lost or written twice.
// The tries end when the supervisor may no longer write the log (its lease
// ran out): the next supervisor resumes from the checkpoint.

/** Output kept while the database does not take it; beyond this, writes wait (the log pump stops reading the engine). */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024

interface Attempt {
  /** How many pending buffers, and bytes, it took. */
  buffers: number
  bytes: number
  mark: LogCheckpoint | undefined
}

export interface WriterOptions {
  repo: LogRepository
  buildId: string
  /** Where the log ends in the database now. */
  end: number
  maxBytes: number
  flushMs: number
  /** Told after each write of output that reached the database (this process's followers). */
  written: () => void
  fence?: WriterFence | undefined
}

export class DatabaseLogWriter implements LogWriter {
  readonly #o: WriterOptions
  #end: number
  #full: boolean
  #pending: Buffer[] = []
  #pendingBytes = 0
  /** The newest checkpoint asked for and not yet written: it covers the log up to its `bytes`. */
  #mark: LogCheckpoint | undefined
  /** A write the database may have committed before the connection died. */
  #uncertain: Attempt | undefined
  /** A failure that is not the database's absence: every later call rejects with it. */
  #failure: unknown
  #chain: Promise<void> = Promise.resolve()
  #soon: NodeJS.Timeout | undefined
  #retry: NodeJS.Timeout | undefined
  #retryMs = 0
  #closed = false
  /** Resolved at each successful write: writers held back by a full buffer look again. */
  #drained = waiter()

  constructor (o: WriterOptions) {
    this.#o = o
    this.#end = o.end
    this.#full = o.end >= o.maxBytes
  }

  write (text: string | Buffer) {
    return this.#append(typeof text === 'string' ? Buffer.from(text) : text, false)
  }

  /** A service line: written at once (or as soon as the database answers), never dropped for the size limit. */
  note (text: string) {
    return this.#append(Buffer.from(text), true)
  }

  checkpoint (marks: Marks) {
    this.#mark = { bytes: this.#end + this.#pendingBytes, marks }
    return this.#flush()
  }

  /** Writes what is left, trying again while the database does not answer and the log may still be written. */
  async close () {
    for (;;) {
      await this.#flush().catch(() => undefined)
      if (this.#failure || (!this.#pendingBytes && !this.#mark) || !this.#mayTry()) break
      await new Promise((resolve) => setTimeout(resolve, this.#retryMs || RETRY_FIRST_MS))
    }
    this.#closed = true
    clearTimeout(this.#retry)
    clearTimeout(this.#soon)
    this.#drained.resolve()
  }

  async #append (data: Buffer, note: boolean) {
    if (this.#failure) throw this.#failure
    if (this.#full && !note) return
    if (!note && this.#end + this.#pendingBytes + data.length > this.#o.maxBytes) {
      data = Buffer.from(TRUNCATED)
      this.#full = true
    }
    this.#pending.push(data)
    this.#pendingBytes += data.length
    if (note || this.#pendingBytes >= READ_BYTES) await this.#flush()
    else this.#soon ??= setTimeout(() => { this.#soon = undefined; this.#flush().catch(() => undefined) }, this.#o.flushMs)
    // Looked at again now and then: the lease may run out while the database stays away.
    while (this.#pendingBytes >= MAX_BUFFERED_BYTES && !this.#closed && !this.#failure && this.#mayTry()) {
      await Promise.race([this.#drained.promise, new Promise((resolve) => setTimeout(resolve, RETRY_MAX_MS))])
    }
    if (this.#failure) throw this.#failure
  }

  /** One try, after those before it, to write everything pending; a database that does not answer is tried again later. */
  #flush () {
    clearTimeout(this.#soon)
    this.#soon = undefined
    this.#chain = this.#chain.then(() => this.#try())
    return this.#chain
  }

  async #try () {
    if (this.#failure) throw this.#failure
    let attempt: Attempt | undefined
    try {
      await this.#settle()
      attempt = { buffers: this.#pending.length, bytes: this.#pendingBytes, mark: this.#mark }
      if (!attempt.bytes && !attempt.mark) return
      const chunks = toChunks(this.#end, this.#pending.slice(0, attempt.buffers))
      await this.#o.repo.append(this.#o.buildId, { chunks, checkpoint: attempt.mark })
    } catch (err) {
      if (!isDatabaseUnavailable(err)) {
        this.#failure = err
        this.#drained.resolve()
        throw err
      }
      if (attempt) this.#uncertain = attempt
      this.#retryLater()
      return
    }
    this.#done(attempt)
  }

  /**
   * After a write whose answer was lost: the log's length says whether it
   * went in (then it is done, and only what came since is written next). A
   * checkpoint alone is simply written again.
   */
  async #settle () {
    const uncertain = this.#uncertain
    if (!uncertain) return
    const size = await this.#o.repo.size(this.#o.buildId)
    if (uncertain.bytes > 0 && size === this.#end + uncertain.bytes) return this.#done(uncertain)
    if (size !== this.#end) throw new Error(`the log of build ${this.#o.buildId} is ${size} bytes, not ${this.#end}: another writer wrote it`)
    this.#uncertain = undefined
  }

  #done (attempt: Attempt) {
    this.#pending.splice(0, attempt.buffers)
    this.#pendingBytes -= attempt.bytes
    this.#end += attempt.bytes
    if (this.#mark === attempt.mark) this.#mark = undefined
    this.#uncertain = undefined
    this.#retryMs = 0
    if (attempt.bytes) this.#o.written()
    const drained = this.#drained
    this.#drained = waiter()
    drained.resolve()
  }

  #retryLater () {
    if (this.#retry || this.#closed || !this.#mayTry()) return
    this.#retryMs = Math.min(RETRY_MAX_MS, Math.max(RETRY_FIRST_MS, this.#retryMs * 2))
    this.#retry = setTimeout(() => { this.#retry = undefined; this.#flush().catch(() => undefined) }, this.#retryMs)
  }

  /** Whether the log may still be written by this supervisor (tries end when it may not). */
  #mayTry () {
    const fence = this.#o.fence
    return !fence?.signal?.aborted && fence?.mayWrite?.() !== false
  }
}

function waiter () {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

/** The pending output as chunks of at most READ_BYTES each, starting at `offset`. */
export function toChunks (offset: number, pending: Buffer[]): LogChunk[] {
  if (!pending.length) return []
  const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending)
  const chunks: LogChunk[] = []
  for (let at = 0; at < all.length; at += READ_BYTES) {
    chunks.push({ offset: offset + at, data: all.subarray(at, at + READ_BYTES) })
  }
  return chunks
}
