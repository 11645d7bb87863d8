import type { Readable } from 'node:stream'

// A build's log, wherever it is kept: files in the data directory
// (file-log-store.ts, one machine) or chunks in the database
// (database-log-store.ts, which every replica on one PostgreSQL reads). The
// log pump writes container output through a writer with checkpoints; the
// service adds notes; followers read from a byte offset.

/** Reads and chunks stay this small: a follower holds one, whatever the log's size. */
export const READ_BYTES = 64 * 1024
export const TRUNCATED = '==> cosa-buildd: log limit reached; further output is dropped\n'
export const noteLine = (text: string) => `==> cosa-buildd: ${text}\n`

/** The boot test's files kept with a build's log, whether or not it published anything. */
export const BOOT_TEST_FILES = ['console.txt', 'journal.txt'] as const
export type BootTestFile = typeof BOOT_TEST_FILES[number]

/** The last frame kept of one stream: its timestamp, and how many frames were kept with exactly that timestamp. */
export interface StreamMark { ts: string, n: number }
export type Marks = Partial<Record<'stdout' | 'stderr', StreamMark>>

export interface LogWriter {
  /** Appends container output; past the log's limit it is dropped, with a note the first time. */
  write: (text: string | Buffer) => Promise<void>
  /** Records that everything written so far covers the container's log up to `marks`. */
  checkpoint: (marks: Marks) => Promise<void>
  close: () => Promise<void>
}

/** Until when a writer may write: its supervisor's signal, and whether its lease is still surely its own. */
export interface WriterFence {
  signal?: AbortSignal | undefined
  mayWrite?: (() => boolean) | undefined
}

/** Says whether a followed build has ended: then the follow ends once everything is sent. */
export type IsDone = () => Promise<boolean>

export interface LogStore {
  size: (buildId: string) => Promise<number>
  /**
   * Where to resume the container's log for this build, after dropping
   * anything written past the checkpoint (a dead process's unconfirmed lines).
   */
  resume: (buildId: string) => Promise<Marks | undefined>
  /**
   * Appends a service line (not from the container). While the container's
   * log is being copied it goes through that writer, so the checkpoint
   * counts it; otherwise it first drops what lies past the checkpoint and
   * moves the checkpoint past itself, so no resume can cut it off.
   */
  note: (buildId: string, text: string) => Promise<void>
  /**
   * The build's writer for container output, until closed; service notes go
   * through it meanwhile. `fence`: when the writer must stop trying to write
   * (a store that retries, the database's, gives up then).
   */
  open: (buildId: string, marks: Marks | undefined, fence?: WriterFence) => Promise<LogWriter>
  /** The log from `offset`; with `follow`, keeps streaming until `isDone()` holds and everything written has been sent. */
  read: (buildId: string, offset: number, follow: boolean, isDone: IsDone, signal: AbortSignal) => Readable
  /** Keeps a boot-test file (copied from `path`) with the build's log. */
  keepAttachment: (buildId: string, name: BootTestFile, path: string) => Promise<void>
  /** A kept boot-test file, or undefined. */
  attachment: (buildId: string, name: BootTestFile) => Promise<{ size: number, body: Readable } | undefined>
  /** Deletes a finished build's log, checkpoint and attachments (housekeeping). */
  remove: (buildId: string) => Promise<void>
}

/** Resolves when the registered waker is called, after `ms`, or on abort. */
export function wakeOrTimeout (register: (wake: () => void) => void, signal: AbortSignal, ms: number) {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      register(() => {})
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    register(done)
  })
}
