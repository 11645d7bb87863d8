import { EventEmitter, once } from 'node:events'
import { createReadStream } from 'node:fs'
import { mkdir, open, readFile, stat, truncate, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { sanitizeLine } from './log-sanitizer.js'

// One append-only file per build. The engine's log lines carry timestamps;
// the writer strips them and checkpoints the last one with the file size, so
// a restarted service resumes the container's log exactly where the file
// ends, without repeating or losing lines.

const TRUNCATED = '==> cosa-buildd: log limit reached; further output is dropped\n'

interface Cursor { ts: string, bytes: number }

export class BuildLogs {
  readonly #dir: string
  readonly #maxBytes: number
  readonly #events = new EventEmitter()
  // The writer of each build whose engine log is being consumed.
  readonly #writers = new Map<string, (text: string) => Promise<void>>()

  constructor (dir: string, maxBytes: number) {
    this.#dir = dir
    this.#maxBytes = maxBytes
    this.#events.setMaxListeners(0)
  }

  path (buildId: string) {
    return join(this.#dir, `${buildId}.log`)
  }

  #cursorPath (buildId: string) {
    return join(this.#dir, `${buildId}.cursor`)
  }

  async size (buildId: string) {
    try {
      return (await stat(this.path(buildId))).size
    } catch {
      return 0
    }
  }

  /**
   * Where to resume the engine's log for this build: the timestamp of the last
   * line kept, after dropping anything written past that checkpoint.
   */
  async resumePoint (buildId: string): Promise<string | undefined> {
    const cursor = await this.#cursor(buildId)
    if (!cursor) return undefined
    if (await this.size(buildId) > cursor.bytes) await truncate(this.path(buildId), cursor.bytes)
    return cursor.ts
  }

  /**
   * Appends a service line (not from the container). While the engine's log
   * is being consumed it goes through that writer, so the checkpoint counts
   * it; otherwise it first drops what lies past the checkpoint (a dead
   * process's unconfirmed lines, which the next consume re-reads) and moves
   * the checkpoint past itself, so no resume can cut it off.
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
      if (cursor) await this.#saveCursor(buildId, { ts: cursor.ts, bytes: (await fh.stat()).size })
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

  #saveCursor (buildId: string, cursor: Cursor) {
    return writeFile(this.#cursorPath(buildId), JSON.stringify(cursor))
  }

  /** Consumes timestamped engine log lines until they end. */
  /** `redact` runs on each line after control sequences are stripped (a secret split by colour codes is still found). */
  async consume (buildId: string, lines: AsyncIterable<string>, resumeAfter?: string, redact?: (line: string) => string) {
    // Take the iterator before any await: readline drops lines emitted
    // before its iterator exists.
    const iterator = lines[Symbol.asyncIterator]()
    await mkdir(this.#dir, { recursive: true })
    const fh: FileHandle = await open(this.path(buildId), 'a')
    let bytes = (await fh.stat()).size
    // Before the first engine line: a resume replays the whole engine log
    // onto the file as it is now (service notes only).
    let lastTs = resumeAfter ?? '0'
    let lastCheckpoint = 0
    const checkpoint = async () => {
      await this.#saveCursor(buildId, { ts: lastTs, bytes })
      lastCheckpoint = Date.now()
    }
    // Engine lines and service notes share this file handle, one at a time.
    let queue = Promise.resolve()
    const append = (text: string) => (queue = queue.then(async () => {
      await fh.write(text)
      bytes += Buffer.byteLength(text)
      this.#events.emit(buildId)
    }))
    this.#writers.set(buildId, append)
    await checkpoint()
    try {
      for await (const raw of { [Symbol.asyncIterator]: () => iterator }) {
        const space = raw.indexOf(' ')
        const ts = raw.slice(0, space)
        // RFC 3339 with nanoseconds sorts as text within one container's log.
        if (resumeAfter !== undefined && ts <= resumeAfter) continue
        lastTs = ts
        if (bytes >= this.#maxBytes) continue
        const clean = sanitizeLine(raw.slice(space + 1))
        let text = (redact ? redact(clean) : clean) + '\n'
        if (bytes + Buffer.byteLength(text) > this.#maxBytes) text = TRUNCATED
        await append(text)
        if (Date.now() - lastCheckpoint > 500) await checkpoint()
      }
    } finally {
      if (this.#writers.get(buildId) === append) this.#writers.delete(buildId)
      await queue
      await checkpoint()
      await fh.close()
      this.#events.emit(buildId)
    }
  }

  /**
   * The log from `offset`; with `follow`, keeps streaming until `isDone()`
   * holds and everything written has been sent.
   */
  read (buildId: string, offset: number, follow: boolean, isDone: () => Promise<boolean>, signal: AbortSignal): Readable {
    const events = this.#events
    const path = this.path(buildId)
    const size = () => this.size(buildId)
    async function * chunks () {
      let position = offset
      while (!signal.aborted) {
        const end = await size()
        if (end > position) {
          for await (const chunk of createReadStream(path, { start: position, end: end - 1 })) {
            position += (chunk as Buffer).length
            yield chunk as Buffer
          }
          continue
        }
        if (!follow) return
        if (await isDone()) {
          if (await size() > position) continue
          return
        }
        // Woken by the writer, or by the timer as a backstop after a restart.
        await once(events, buildId, { signal: AbortSignal.any([signal, AbortSignal.timeout(1000)]) })
          .catch(() => undefined)
      }
    }
    return Readable.from(chunks())
  }
}
