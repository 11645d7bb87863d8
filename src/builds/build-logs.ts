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
    let cursor: Cursor
    try {
      cursor = JSON.parse(await readFile(this.#cursorPath(buildId), 'utf8'))
    } catch {
      return undefined
    }
    if (await this.size(buildId) > cursor.bytes) await truncate(this.path(buildId), cursor.bytes)
    return cursor.ts
  }

  /** Appends a service line (not from the container). */
  async note (buildId: string, text: string) {
    await mkdir(this.#dir, { recursive: true })
    const fh = await open(this.path(buildId), 'a')
    try {
      await fh.write(`==> cosa-buildd: ${text}\n`)
    } finally {
      await fh.close()
    }
    this.#events.emit(buildId)
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
      await writeFile(this.#cursorPath(buildId), JSON.stringify({ ts: lastTs, bytes } satisfies Cursor))
      lastCheckpoint = Date.now()
    }
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
        await fh.write(text)
        bytes += Buffer.byteLength(text)
        this.#events.emit(buildId)
        if (Date.now() - lastCheckpoint > 500) await checkpoint()
      }
    } finally {
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
