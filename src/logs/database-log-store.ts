import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { LogChunk, LogRepository } from '../store/repositories.js'
import { readLog, type LogSource } from './log-reader.js'
import { noteLine, READ_BYTES, TRUNCATED, type BootTestFile, type IsDone, type LogStore, type LogWriter, type Marks } from './log-store.js'

// Build logs as chunks in the database, so that every replica on one
// PostgreSQL serves any build's log and follows it while another replica
// writes it. The writer gathers output for at most `flushMs` (or one chunk's
// worth) and writes it as one chunk; a checkpoint goes in the same
// transaction as the chunk before it, so a resume after a crash cuts the
// log back exactly to what the checkpoint covers, as the file store does.
// Followers in this process are woken by each write; followers elsewhere
// look again every `pollMs`, and once the build has ended they look for
// another 2 × `pollMs` for the line that says how it ended (written by its
// supervisor, maybe on another replica, just after the final state).

export interface DatabaseLogOptions {
  maxBytes: number
  /** How long output waits in the writer before it is written (followers see it then). */
  flushMs?: number
  /** How often a follower looks for lines written by another replica. */
  pollMs?: number
}

export class DatabaseLogStore implements LogStore {
  readonly #repo: LogRepository
  readonly #maxBytes: number
  readonly #flushMs: number
  readonly #pollMs: number
  readonly #events = new EventEmitter()
  // The note writer of each build whose container log this process copies.
  readonly #writers = new Map<string, (text: string) => Promise<void>>()

  constructor (repo: LogRepository, opts: DatabaseLogOptions) {
    this.#repo = repo
    this.#maxBytes = opts.maxBytes
    this.#flushMs = opts.flushMs ?? 200
    this.#pollMs = opts.pollMs ?? 500
    this.#events.setMaxListeners(0)
  }

  size (buildId: string) {
    return this.#repo.size(buildId)
  }

  async resume (buildId: string) {
    const checkpoint = await this.#repo.checkpoint(buildId)
    if (!checkpoint) return undefined
    await this.#repo.cutTo(buildId, checkpoint.bytes)
    return checkpoint.marks
  }

  async note (buildId: string, text: string) {
    const line = noteLine(text)
    const writer = this.#writers.get(buildId)
    if (writer) return writer(line)
    const checkpoint = await this.#repo.checkpoint(buildId)
    const offset = checkpoint ? checkpoint.bytes : await this.#repo.size(buildId)
    const data = Buffer.from(line)
    await this.#repo.append(buildId, {
      cutTo: checkpoint?.bytes,
      chunks: [{ offset, data }],
      checkpoint: checkpoint && { ...checkpoint, bytes: offset + data.length }
    })
    this.#events.emit(buildId)
  }

  async open (buildId: string, marks: Marks | undefined): Promise<LogWriter> {
    let bytes = await this.#repo.size(buildId)
    let full = bytes >= this.#maxBytes
    let pending: Buffer[] = []
    let buffered = 0
    let timer: NodeJS.Timeout | undefined
    // Writes, flushes and checkpoints one at a time, in order.
    let queue = Promise.resolve()
    const enqueue = (work: () => Promise<void>) => (queue = queue.then(work))
    const flush = async (checkpoint?: Marks) => {
      clearTimeout(timer)
      timer = undefined
      const chunks = toChunks(bytes, pending)
      pending = []
      buffered = 0
      if (!chunks.length && !checkpoint) return
      const end = chunks.length ? chunks.at(-1)!.offset + chunks.at(-1)!.data.length : bytes
      await this.#repo.append(buildId, { chunks, checkpoint: checkpoint && { bytes: end, marks: checkpoint } })
      bytes = end
      if (chunks.length) this.#events.emit(buildId)
    }
    const append = (text: string | Buffer, note: boolean) => enqueue(async () => {
      if (full && !note) return
      let data = typeof text === 'string' ? Buffer.from(text) : text
      if (!note && bytes + buffered + data.length > this.#maxBytes) {
        data = Buffer.from(TRUNCATED)
        full = true
      }
      pending.push(data)
      buffered += data.length
      if (note || buffered >= READ_BYTES) return flush()
      timer ??= setTimeout(() => { enqueue(flush).catch(() => undefined) }, this.#flushMs)
    })
    const noteWriter = (text: string) => append(text, true)
    this.#writers.set(buildId, noteWriter)
    const checkpoint = (next: Marks) => enqueue(() => flush(next))
    await checkpoint(marks ?? {})
    return {
      write: (text) => append(text, false),
      checkpoint,
      close: async () => {
        if (this.#writers.get(buildId) === noteWriter) this.#writers.delete(buildId)
        // No checkpoint here: output written since the last one is re-read on resume.
        await enqueue(flush).catch(() => undefined)
        clearTimeout(timer)
        this.#events.emit(buildId)
      }
    }
  }

  read (buildId: string, offset: number, follow: boolean, isDone: IsDone, signal: AbortSignal) {
    return readLog(async () => this.#source(buildId), {
      offset, follow, isDone, signal, writes: this.#events, buildId, pollMs: this.#pollMs, settleMs: 2 * this.#pollMs
    })
  }

  #source (buildId: string): LogSource {
    return {
      end: () => this.#repo.size(buildId),
      readAt: async (position, max) => {
        const chunk = await this.#repo.chunkAt(buildId, position)
        if (!chunk) return Buffer.alloc(0)
        const from = position - chunk.offset
        return chunk.data.subarray(from, from + max)
      }
    }
  }

  async keepAttachment (buildId: string, name: BootTestFile, path: string) {
    await this.#repo.putAttachment(buildId, name, await readFile(path))
  }

  async attachment (buildId: string, name: BootTestFile) {
    const data = await this.#repo.getAttachment(buildId, name)
    return data && { size: data.length, body: Readable.from([data]) }
  }

  remove (buildId: string) {
    return this.#repo.remove(buildId)
  }
}

/** The pending output as chunks of at most READ_BYTES each, starting at `offset`. */
function toChunks (offset: number, pending: Buffer[]): LogChunk[] {
  if (!pending.length) return []
  const all = pending.length === 1 ? pending[0]! : Buffer.concat(pending)
  const chunks: LogChunk[] = []
  for (let at = 0; at < all.length; at += READ_BYTES) {
    chunks.push({ offset: offset + at, data: all.subarray(at, at + READ_BYTES) })
  }
  return chunks
}
