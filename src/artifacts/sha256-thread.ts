import { Worker } from 'node:worker_threads'

// A file's sha256 on a thread of its own: on the main thread it was half of
// putFile's CPU time, serial with the parts' CRC32s and the SDK's requests,
// while the second core waited (docs/benchmarks.md). The bytes stay where
// they were read, in SharedArrayBuffer memory: nothing is copied.
//
// Plain JavaScript, evaluated, with no execArgv: a worker started from a
// module file would load tsx again under `node --import tsx`, 20-30 MiB.
const SOURCE = `
const { parentPort } = require('node:worker_threads')
const { createHash } = require('node:crypto')
const running = new Map()
parentPort.on('message', ({ id, op, buffer, offset, length }) => {
  if (op === 'update') {
    let hash = running.get(id)
    if (!hash) running.set(id, hash = createHash('sha256'))
    hash.update(new Uint8Array(buffer, offset, length))
    parentPort.postMessage({ id })
  } else if (op === 'digest') {
    const hash = running.get(id) ?? createHash('sha256')
    running.delete(id)
    parentPort.postMessage({ id, digest: hash.digest('hex') })
  } else {
    running.delete(id)
  }
})
`

interface Reply { id: number, digest?: string }
type Waiter = (reply: Reply | Error) => void

/** One worker and what is waiting on its answers; a worker that died is replaced by a new one. */
class Generation {
  readonly waiting = new Map<number, Waiter[]>()
  pending = 0
  error: Error | undefined

  constructor (readonly worker: Worker) {}

  wait (id: number, waiter: Waiter) {
    const queue = this.waiting.get(id)
    if (queue) queue.push(waiter)
    else this.waiting.set(id, [waiter])
    // Held only while an answer is due: an idle thread never keeps the process alive.
    if (this.pending++ === 0) this.worker.ref()
  }

  answer (reply: Reply) {
    const queue = this.waiting.get(reply.id)
    const waiter = queue?.shift()
    if (!waiter) return
    if (queue!.length === 0) this.waiting.delete(reply.id)
    if (--this.pending === 0) this.worker.unref()
    waiter(reply)
  }

  die (err: Error) {
    this.error ??= err
    const queues = [...this.waiting.values()]
    this.waiting.clear()
    this.pending = 0
    for (const queue of queues) for (const waiter of queue) waiter(this.error)
  }
}

/** One running sha256 in the thread. */
export class Sha256Stream {
  constructor (private readonly generation: Generation, private readonly id: number) {}

  /** Why the thread can no longer hash this stream, if it cannot. */
  get error (): Error | undefined { return this.generation.error }

  /**
   * Hashes `bytes` (a view of a SharedArrayBuffer), which must stay unchanged
   * until the promise resolves. It always resolves, also when the thread died
   * (see error): then the bytes are no longer read either.
   */
  update (bytes: Uint8Array): Promise<void> {
    if (!(bytes.buffer instanceof SharedArrayBuffer)) throw new TypeError('Sha256Stream hashes SharedArrayBuffer memory only')
    if (this.error) return Promise.resolve()
    const { worker } = this.generation
    return new Promise((resolve) => {
      this.generation.wait(this.id, () => resolve())
      worker.postMessage({ id: this.id, op: 'update', buffer: bytes.buffer, offset: bytes.byteOffset, length: bytes.byteLength })
    })
  }

  /** The hex digest of every update, once they are all hashed. */
  digest (): Promise<string> {
    if (this.error) return Promise.reject(this.error)
    return new Promise((resolve, reject) => {
      this.generation.wait(this.id, (reply) => {
        if (reply instanceof Error) reject(reply)
        else resolve(reply.digest!)
      })
      this.generation.worker.postMessage({ id: this.id, op: 'digest' })
    })
  }

  /** Drops the stream's state in the thread (after a failure: digest() was not asked for). */
  discard () {
    if (!this.error) this.generation.worker.postMessage({ id: this.id, op: 'discard' })
  }
}

/** The thread that hashes the files of one store, started on first use. */
export class Sha256Thread {
  // Not a #field: a test ends the worker to show what a dead thread does to an upload.
  private current: Generation | undefined
  #nextId = 0

  open (): Sha256Stream {
    this.current ??= this.#start()
    return new Sha256Stream(this.current, ++this.#nextId)
  }

  /** Ends the thread; a stream still open fails, as it does when the thread dies. */
  async close () {
    const generation = this.current
    this.current = undefined
    if (!generation) return
    generation.die(new Error('the sha256 thread was closed'))
    await generation.worker.terminate()
  }

  #start (): Generation {
    const worker = new Worker(SOURCE, { eval: true, execArgv: [], name: 'cosa-buildd sha256' })
    const generation = new Generation(worker)
    worker.on('message', (reply: Reply) => generation.answer(reply))
    // 'error' (an exception in the thread) comes before 'exit', and says more.
    worker.on('error', (err) => this.#lost(generation, new Error(`the sha256 thread failed: ${err.message}`, { cause: err })))
    worker.on('exit', (code) => this.#lost(generation, new Error(`the sha256 thread exited (code ${code})`)))
    worker.unref()
    return generation
  }

  #lost (generation: Generation, err: Error) {
    if (this.current === generation) this.current = undefined
    generation.die(err)
  }
}
