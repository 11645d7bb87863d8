import { EventEmitter } from 'node:events'
import { mkdir, open, readFile, rename, rm, stat, truncate, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'

// One append-only file per build, written by the log pump (log-pump.ts) and
// by service notes. Beside it, a checkpoint: the file size and, for each of
// the container's streams, the timestamp of the last line kept. A restarted
// service cuts the file back to the checkpoint and resumes the container's
// log right after those lines, so nothing is written twice or skipped.

const READ_BYTES = 64 * 1024
const TRUNCATED = '==> cosa-buildd: log limit reached; further output is dropped\n'

/** The boot test's files kept with a build's log, whether or not it published anything. */
export const BOOT_TEST_FILES = ['console.txt', 'journal.txt'] as const
export type BootTestFile = typeof BOOT_TEST_FILES[number]

/** The last frame kept of one stream: its timestamp, and how many frames were kept with exactly that timestamp. */
export interface StreamMark { ts: string, n: number }
export type Marks = Partial<Record<'stdout' | 'stderr', StreamMark>>

// `ts` alone: a checkpoint of an older version, which kept one timestamp for both streams.
interface Cursor { bytes: number, marks?: Marks, ts?: string }

export interface LogWriter {
  /** Appends container output; past the log's limit it is dropped, with a note the first time. */
  write: (text: string | Buffer) => Promise<void>
  /** Records that everything written so far covers the container's log up to `marks`. */
  checkpoint: (marks: Marks) => Promise<void>
  close: () => Promise<void>
}

export class BuildLogs {
  readonly #dir: string
  readonly #maxBytes: number
  readonly #events = new EventEmitter()
  // The note writer of each build whose container log is being copied.
  readonly #writers = new Map<string, (text: string) => Promise<void>>()

  constructor (dir: string, maxBytes: number) {
    this.#dir = dir
    this.#maxBytes = maxBytes
    this.#events.setMaxListeners(0)
  }

  path (buildId: string) {
    return join(this.#dir, `${buildId}.log`)
  }

  /** A file kept with the build's log: the boot test's console and journal (run/boot-test.ts). */
  attachmentPath (buildId: string, name: BootTestFile) {
    return join(this.#dir, `${buildId}.${name}`)
  }

  #cursorPath (buildId: string) {
    return join(this.#dir, `${buildId}.cursor`)
  }

  /** Deletes a finished build's log and checkpoint (housekeeping). */
  async remove (buildId: string) {
    await rm(this.path(buildId), { force: true })
    await rm(this.#cursorPath(buildId), { force: true })
    for (const name of BOOT_TEST_FILES) await rm(this.attachmentPath(buildId, name), { force: true })
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
    const line = `==> cosa-buildd: ${text}\n`
    const writer = this.#writers.get(buildId)
    if (writer) return writer(line)
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
    // Output and notes share the file handle, one write at a time.
    let queue = Promise.resolve()
    const append = (text: string | Buffer, note: boolean) => (queue = queue.then(async () => {
      if (full && !note) return
      if (!note && bytes + Buffer.byteLength(text) > this.#maxBytes) {
        text = TRUNCATED
        full = true
      }
      await (typeof text === 'string' ? fh.write(text) : fh.write(text))
      bytes += Buffer.byteLength(text)
      this.#events.emit(buildId)
    }))
    const noteWriter = (text: string) => append(text, true)
    this.#writers.set(buildId, noteWriter)
    const checkpoint = (next: Marks) => (queue = queue.then(() => this.#saveCursor(buildId, { bytes, marks: next })))
    await checkpoint(marks ?? {})
    return {
      write: (text) => append(text, false),
      checkpoint,
      close: async () => {
        if (this.#writers.get(buildId) === noteWriter) this.#writers.delete(buildId)
        // No checkpoint here: output written since the last one is re-read on resume.
        await queue.catch(() => undefined)
        await fh.close()
        this.#events.emit(buildId)
      }
    }
  }

  /**
   * The log from `offset`; with `follow`, keeps streaming until `isDone()`
   * holds and everything written has been sent.
   */
  read (buildId: string, offset: number, follow: boolean, isDone: () => Promise<boolean>, signal: AbortSignal): Readable {
    const events = this.#events
    const path = this.path(buildId)
    async function * chunks () {
      // A follower may come before the first line: it waits for the file.
      let fh = await open(path, 'r').catch(() => undefined)
      // One listener for the follower's life; a write between looking and
      // waiting is not missed.
      let written = false
      let wake = () => {}
      const onWrite = () => { written = true; wake() }
      events.on(buildId, onWrite)
      try {
        let position = offset
        while (!signal.aborted) {
          written = false
          fh ??= await open(path, 'r').catch(() => undefined)
          const end = fh ? (await fh.stat()).size : 0
          if (end > position) {
            // Sized to what is there: most wake-ups find a few lines, not 64 KiB.
            const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, end - position))
            const { bytesRead } = await fh!.read(buf, 0, buf.length, position)
            position += bytesRead
            yield buf.subarray(0, bytesRead)
            continue
          }
          if (!follow) return
          if (await isDone()) {
            if (fh && (await fh.stat()).size > position) continue
            return
          }
          // Woken by the writer, or by the timer as a backstop after a restart.
          if (!written) await wakeOrTimeout((w) => { wake = w }, signal)
        }
      } finally {
        events.off(buildId, onWrite)
        await fh?.close()
      }
    }
    // Bytes, not objects: a follower that reads slowly holds one buffer of
    // its own, whatever the log's size.
    return Readable.from(chunks(), { objectMode: false, highWaterMark: READ_BYTES })
  }
}

/** Resolves when the registered waker is called, after a second, or on abort. */
function wakeOrTimeout (register: (wake: () => void) => void, signal: AbortSignal) {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      register(() => {})
      resolve()
    }
    const timer = setTimeout(done, 1000)
    signal.addEventListener('abort', done, { once: true })
    register(done)
  })
}
