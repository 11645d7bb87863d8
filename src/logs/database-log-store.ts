import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { LogRepository } from '../store/repositories.js'
import { KeyedQueue } from './keyed-queue.js'
import { readLog, type LogSource } from './log-reader.js'
import { DatabaseLogWriter } from './database-log-writer.js'
import { noteLine, type BootTestFile, type IsDone, type LogStore, type LogWriter, type Marks, type WriterFence } from './log-store.js'

// Build logs as chunks in the database, so that every replica on one
// PostgreSQL serves any build's log and follows it while another replica
// writes it. The writer (database-log-writer.ts) gathers output for at most
// `flushMs` (or one chunk's worth) and writes it as one chunk, keeping it
// while the database does not answer; a checkpoint goes in the same
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
  // A note or resume waits for a closing writer's last output and checkpoint.
  readonly #queue = new KeyedQueue()

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
    return this.#queue.run(buildId, async () => {
      const checkpoint = await this.#repo.checkpoint(buildId)
      if (!checkpoint) return undefined
      await this.#repo.cutTo(buildId, checkpoint.bytes)
      return checkpoint.marks
    })
  }

  async note (buildId: string, text: string) {
    const line = noteLine(text)
    const writer = this.#writers.get(buildId)
    if (writer) return writer(line)
    await this.#queue.run(buildId, () => this.#appendNote(buildId, line))
  }

  async #appendNote (buildId: string, line: string) {
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

  async open (buildId: string, marks: Marks | undefined, fence?: WriterFence): Promise<LogWriter> {
    const writer = new DatabaseLogWriter({
      repo: this.#repo,
      buildId,
      end: await this.#repo.size(buildId),
      maxBytes: this.#maxBytes,
      flushMs: this.#flushMs,
      written: () => this.#events.emit(buildId),
      fence
    })
    const note = (line: string) => writer.note(line)
    this.#writers.set(buildId, note)
    await writer.checkpoint(marks ?? {})
    return {
      write: (text) => writer.write(text),
      checkpoint: (next) => writer.checkpoint(next),
      close: async () => {
        if (this.#writers.get(buildId) === note) this.#writers.delete(buildId)
        // No checkpoint here: output written since the last one is re-read on resume.
        await this.#queue.run(buildId, () => writer.close())
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
