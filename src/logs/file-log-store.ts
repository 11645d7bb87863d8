import { EventEmitter } from 'node:events'
import { createReadStream } from 'node:fs'
import { copyFile, mkdir, open, readFile, rename, rm, stat, truncate, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { KeyedQueue } from './keyed-queue.js'
import { readLog, type LogSource } from './log-reader.js'
import { BOOT_TEST_FILES, noteLine, TRUNCATED, type BootTestFile, type IsDone, type LogStore, type LogWriter, type Marks } from './log-store.js'

// One append-only file per build in the data directory, written by the log
// pump and by service notes. Beside it, a checkpoint: the file size and, for
// each of the container's streams, the timestamp of the last line kept. A
// restarted service cuts the file back to the checkpoint and resumes the
// container's log right after those lines, so nothing is written twice or
// skipped.

// `ts` alone: a checkpoint of an older version, which kept one timestamp for both streams.
interface Cursor { bytes: number, marks?: Marks, ts?: string }

export class FileLogStore implements LogStore {
  readonly #dir: string
  readonly #maxBytes: number
  readonly #events = new EventEmitter()
  // The note writer of each build whose container log is being copied.
  readonly #writers = new Map<string, (text: string) => Promise<void>>()
  // Each build's file and checkpoint change one operation at a time (notes, output, checkpoints, resumes).
  readonly #queue = new KeyedQueue()

  constructor (dir: string, maxBytes: number) {
    this.#dir = dir
    this.#maxBytes = maxBytes
    this.#events.setMaxListeners(0)
  }

  path (buildId: string) {
    return join(this.#dir, `${buildId}.log`)
  }

  #attachmentPath (buildId: string, name: BootTestFile) {
    return join(this.#dir, `${buildId}.${name}`)
  }

  async keepAttachment (buildId: string, name: BootTestFile, path: string) {
    await mkdir(this.#dir, { recursive: true })
    await copyFile(path, this.#attachmentPath(buildId, name))
  }

  async attachment (buildId: string, name: BootTestFile) {
    const path = this.#attachmentPath(buildId, name)
    const size = await stat(path).then((s) => s.size, () => undefined)
    return size === undefined ? undefined : { size, body: createReadStream(path) }
  }

  #cursorPath (buildId: string) {
    return join(this.#dir, `${buildId}.cursor`)
  }

  /** Deletes a finished build's log and checkpoint (housekeeping). */
  async remove (buildId: string) {
    await rm(this.path(buildId), { force: true })
    await rm(this.#cursorPath(buildId), { force: true })
    for (const name of BOOT_TEST_FILES) await rm(this.#attachmentPath(buildId, name), { force: true })
  }

  async size (buildId: string) {
    try {
      return (await stat(this.path(buildId))).size
    } catch {
      return 0
    }
  }

  /**
   * Where to resume the container's log for this build, after dropping
   * anything written past the checkpoint (a dead process's unconfirmed lines).
   */
  async resume (buildId: string): Promise<Marks | undefined> {
    return this.#queue.run(buildId, () => this.#resume(buildId))
  }

  async #resume (buildId: string): Promise<Marks | undefined> {
    const cursor = await this.#cursor(buildId)
    if (!cursor) return undefined
    if (await this.size(buildId) > cursor.bytes) await truncate(this.path(buildId), cursor.bytes)
    if (cursor.marks) return cursor.marks
    if (cursor.ts === undefined) return undefined
    // The old checkpoint dropped every line up to and including its timestamp, in both streams.
    const all = { ts: cursor.ts, n: Number.MAX_SAFE_INTEGER }
    return { stdout: all, stderr: all }
  }

  /**
   * Appends a service line (not from the container). While the container's
   * log is being copied it goes through that writer, so the checkpoint counts
   * it; otherwise it first drops what lies past the checkpoint (a dead
   * process's unconfirmed lines, which the next copy re-reads) and moves the
   * checkpoint past itself, so no resume can cut it off.
   */
  async note (buildId: string, text: string) {
    const line = noteLine(text)
    const writer = this.#writers.get(buildId)
    if (writer) return writer(line)
    await this.#queue.run(buildId, () => this.#appendNote(buildId, line))
  }

  async #appendNote (buildId: string, line: string) {
    await mkdir(this.#dir, { recursive: true })
    const cursor = await this.#cursor(buildId)
    if (cursor && await this.size(buildId) > cursor.bytes) await truncate(this.path(buildId), cursor.bytes)
    const fh = await open(this.path(buildId), 'a')
    try {
      await fh.write(line)
      if (cursor) await this.#saveCursor(buildId, { ...cursor, bytes: (await fh.stat()).size })
    } finally {
      await fh.close()
    }
    this.#events.emit(buildId)
  }

  async #cursor (buildId: string): Promise<Cursor | undefined> {
    try {
      return JSON.parse(await readFile(this.#cursorPath(buildId), 'utf8'))
    } catch {
      return undefined
    }
  }

  /**
   * Written aside and renamed over the old one: a process killed while
   * writing in place leaves an empty checkpoint, and the next copy would
   * start the container's log again from its first line.
   */
  async #saveCursor (buildId: string, cursor: Cursor) {
    const path = this.#cursorPath(buildId)
    await writeFile(`${path}.tmp`, JSON.stringify(cursor))
    await rename(`${path}.tmp`, path)
  }

  /** The build's writer for container output, until closed; service notes go through it meanwhile. */
  async open (buildId: string, marks: Marks | undefined): Promise<LogWriter> {
    await mkdir(this.#dir, { recursive: true })
    const fh: FileHandle = await open(this.path(buildId), 'a')
    let bytes = (await fh.stat()).size
    let full = bytes >= this.#maxBytes
    // After a failed write the file may hold more than `bytes`: nothing after it is written or checkpointed.
    let failed: unknown
    const step = (fn: () => Promise<void>) => this.#queue.run(buildId, async () => {
      if (failed !== undefined) throw failed
      await fn().catch((err: unknown) => { failed = err; throw err })
    })
    // Output and notes share the file handle, one write at a time.
    const append = (text: string | Buffer, note: boolean) => step(async () => {
      if (full && !note) return
      if (!note && bytes + Buffer.byteLength(text) > this.#maxBytes) {
        text = TRUNCATED
        full = true
      }
      await (typeof text === 'string' ? fh.write(text) : fh.write(text))
      bytes += Buffer.byteLength(text)
      this.#events.emit(buildId)
    })
    const noteWriter = (text: string) => append(text, true)
    this.#writers.set(buildId, noteWriter)
    const checkpoint = (next: Marks) => step(() => this.#saveCursor(buildId, { bytes, marks: next }))
    await checkpoint(marks ?? {})
    return {
      write: (text) => append(text, false),
      checkpoint,
      close: async () => {
        if (this.#writers.get(buildId) === noteWriter) this.#writers.delete(buildId)
        // No checkpoint here: output written since the last one is re-read on resume.
        await this.#queue.run(buildId, async () => {})
        await fh.close()
        this.#events.emit(buildId)
      }
    }
  }

  read (buildId: string, offset: number, follow: boolean, isDone: IsDone, signal: AbortSignal) {
    return readLog(async () => fileSource(this.path(buildId)), {
      offset, follow, isDone, signal, writes: this.#events, buildId, pollMs: 1000
    })
  }
}

/** The file as a reader sees it; a follower may come before the first line, and waits for the file. */
function fileSource (path: string): LogSource {
  let fh: FileHandle | undefined
  return {
    end: async () => {
      fh ??= await open(path, 'r').catch(() => undefined)
      return fh ? (await fh.stat()).size : 0
    },
    readAt: async (position, max) => {
      const buf = Buffer.allocUnsafe(max)
      const { bytesRead } = await fh!.read(buf, 0, max, position)
      return buf.subarray(0, bytesRead)
    },
    close: async () => { await fh?.close() }
  }
}
