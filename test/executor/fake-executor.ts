import { mkdir } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import {
  EngineError, type BuildJob, type EngineCapacity, type Executor, type JobState, type LogFrame, type LogSnapshot,
  type LogSnapshotOptions, type OwnedJob, type PulledFile, type Workspace
} from '../../src/executor/executor.js'

// An engine in memory, for tests of the build pipeline's logic without
// Docker (the Docker executor has tests of its own on the real engine). A
// job runs a program the test gives: it prints, may touch the workdir and
// post a result, and ends with an exit status, or runs until stopped. The
// test can also act as the world does: crash the engine (its jobs die by
// SIGTERM and every call fails until restore()), or delete a job.

export interface JobExit { exitCode: number, oomKilled?: boolean }

export interface FakeRun {
  job: BuildJob
  workdir: string
  print: (line: string) => void
  /** Aborts when the job is stopped, removed or killed by a crash. */
  ended: AbortSignal
}

/** What a job does once started; undefined: it runs until something stops it. */
export type Program = (run: FakeRun) => Promise<JobExit | undefined>

interface FakeJob {
  id: string
  job: BuildJob
  state: 'created' | 'running' | 'exited'
  exit: JobExit
  frames: LogFrame[]
  ended: AbortController
  waiters: Array<{ resolve: (code: number) => void, reject: (err: Error) => void }>
}

export interface FakeExecutorOptions {
  name?: string
  arch?: string
  workdir: (stream: string, arch?: string) => string
  program?: Program
  capacity?: EngineCapacity
  /** Images the engine has; any image when unset. */
  images?: string[]
}

const pending: Program = async () => undefined

export class FakeExecutor implements Executor {
  readonly name: string
  readonly jobs = new Map<string, FakeJob>()
  /** Every call, by method name (inspect with its id), for tests that assert what was asked. */
  readonly calls: string[] = []
  program: Program
  #down = false
  #seq = 0
  #lastMs = 0
  #sub = 0
  readonly #opts: FakeExecutorOptions

  constructor (opts: FakeExecutorOptions) {
    this.name = opts.name ?? 'fake'
    this.program = opts.program ?? pending
    this.#opts = opts
  }

  /** The engine dies: running jobs end by SIGTERM, waits break, every call fails until restore(). */
  crash () {
    this.#down = true
    for (const job of this.jobs.values()) {
      if (job.state === 'running') this.#exit(job, { exitCode: 143 })
    }
  }

  restore () {
    this.#down = false
  }

  /** Someone deletes the job from outside (`docker rm -f`). */
  vanish (id: string) {
    const job = this.jobs.get(id)
    if (!job) return
    if (job.state === 'running') this.#exit(job, { exitCode: 137 })
    this.jobs.delete(id)
  }

  #call (what: string) {
    this.calls.push(what)
    if (this.#down) throw new EngineError('unavailable', `${what}: the fake engine ${this.name} is down`)
  }

  #job (id: string, what: string) {
    const job = this.jobs.get(id)
    if (!job) throw new EngineError('not_found', `${what}: no such job ${id}`)
    return job
  }

  async ping () { this.#call('ping') }

  async version () {
    this.#call('version')
    return 'fake-1.0'
  }

  async arch () {
    this.#call('arch')
    return this.#opts.arch ?? 'x86_64'
  }

  async capacity () {
    this.#call('capacity')
    return this.#opts.capacity ?? { cpus: 4, memoryBytes: 16 * 1024 ** 3 }
  }

  async imageUser (image: string) {
    this.#call('imageUser')
    return !this.#opts.images || this.#opts.images.includes(image) ? '' : undefined
  }

  workdir (stream: string, arch?: string) { return this.#opts.workdir(stream, arch) }

  async prepareWorkspace (input: { stream: string, arch?: string | undefined }) {
    this.#call('prepareWorkspace')
    await mkdir(this.workdir(input.stream, input.arch), { recursive: true })
  }

  async removeWorkspace () {
    this.#call('removeWorkspace')
  }

  /** Jobs here work in the service's own workdir: nothing to copy. */
  async pullBuild () {
    this.#call('pullBuild')
    return undefined
  }

  async receiveBuild (_input: Workspace & { archive: Readable, paths: string[] }): Promise<PulledFile[] | undefined> {
    this.#call('receiveBuild')
    return undefined
  }

  async create (job: BuildJob) {
    this.#call('create')
    const existing = [...this.jobs.values()].find((j) => j.job.buildId === job.buildId)
    if (existing) return existing.id
    const id = `${this.name}-job-${++this.#seq}`
    this.jobs.set(id, { id, job, state: 'created', exit: { exitCode: 0 }, frames: [], ended: new AbortController(), waiters: [] })
    return id
  }

  async start (id: string) {
    this.#call('start')
    const job = this.#job(id, 'start')
    if (job.state !== 'created') return
    job.state = 'running'
    const run: FakeRun = { job: job.job, workdir: this.workdir(job.job.stream, job.job.arch), print: (line) => this.#print(job, line), ended: job.ended.signal }
    // Ended meanwhile (stopped, removed, a crash): what the program says comes too late.
    this.program(run).then((exit) => {
      if (exit && job.state === 'running') this.#exit(job, exit)
    }, (err) => {
      if (job.state !== 'running') return
      this.#print(job, `program failed: ${(err as Error).message}`)
      this.#exit(job, { exitCode: 1 })
    })
  }

  async wait (id: string, signal: AbortSignal) {
    this.#call('wait')
    const job = this.#job(id, 'wait')
    if (job.state === 'exited') return job.exit.exitCode
    return new Promise<number>((resolve, reject) => {
      const abort = () => reject(new EngineError('timeout', 'wait: aborted'))
      if (signal.aborted) return abort()
      signal.addEventListener('abort', abort, { once: true })
      job.waiters.push({
        resolve: (code) => { signal.removeEventListener('abort', abort); resolve(code) },
        reject: (err) => { signal.removeEventListener('abort', abort); reject(err) }
      })
    })
  }

  async inspect (id: string): Promise<JobState | undefined> {
    this.#call(`inspect ${id}`)
    const job = this.jobs.get(id)
    return job && { id, running: job.state === 'running', removing: false, exitCode: job.exit.exitCode, oomKilled: job.exit.oomKilled ?? false }
  }

  async findByBuild (buildId: string) {
    const job = [...this.jobs.values()].find((j) => j.job.buildId === buildId)
    return job ? this.inspect(job.id) : (this.#call(`inspect ${buildId}`), undefined)
  }

  async logSnapshot (id: string, opts: LogSnapshotOptions, signal: AbortSignal): Promise<LogSnapshot> {
    this.#call('logSnapshot')
    const job = this.#job(id, 'logs')
    const since = opts.since === undefined ? -1n : engineNs(opts.since)
    let frames = job.frames.filter((f) => frameNs(f.ts) >= since)
    if (opts.tail !== undefined) frames = frames.slice(-opts.tail)
    let failed: Error | undefined
    const batches = (async function * () {
      for (const frame of frames) {
        if (failed) throw failed
        if (signal.aborted) return
        yield [frame]
      }
    })()
    return { [Symbol.asyncIterator]: () => batches, destroy: (err) => { failed = err ?? new Error('destroyed') } }
  }

  async stop (id: string) {
    this.#call('stop')
    const job = this.jobs.get(id)
    if (job?.state === 'running') this.#exit(job, { exitCode: 143 })
  }

  async remove (id: string) {
    this.#call('remove')
    const job = this.jobs.get(id)
    if (!job) return
    if (job.state === 'running') this.#exit(job, { exitCode: 137 })
    this.jobs.delete(id)
  }

  async listOwned (): Promise<OwnedJob[]> {
    this.#call('listOwned')
    return [...this.jobs.values()].map((j) => ({ id: j.id, name: `fake-${j.job.buildId}`, buildId: j.job.buildId }))
  }

  #exit (job: FakeJob, exit: JobExit) {
    job.state = 'exited'
    job.exit = exit
    job.ended.abort()
    const waiters = job.waiters.splice(0)
    for (const w of waiters) {
      // A crash breaks the wait, as a dying engine's connection does; the caller must inspect again.
      if (this.#down) w.reject(new EngineError('unavailable', 'wait: the fake engine went away'))
      else w.resolve(exit.exitCode)
    }
  }

  /** Frames carry the engine's timestamps: RFC 3339 with 9 digits, increasing. */
  #print (job: FakeJob, line: string) {
    const ms = Date.now()
    this.#sub = ms === this.#lastMs ? this.#sub + 1 : 0
    this.#lastMs = ms
    const ts = `${new Date(ms).toISOString().slice(0, 23)}${String(this.#sub).padStart(6, '0')}Z`
    job.frames.push({ stream: 'stdout', ts, data: Buffer.from(`${line}\n`) })
  }
}

const frameNs = (ts: string) => BigInt(Date.parse(ts.slice(0, 19) + 'Z') / 1000) * 1_000_000_000n + BigInt(ts.slice(20, 29))
const engineNs = (since: string) => {
  const [s = '0', ns = '0'] = since.split('.')
  return BigInt(s) * 1_000_000_000n + BigInt(ns.padEnd(9, '0'))
}

/** A job of `buildId` as the runner would make it, for tests that put jobs on an engine themselves. */
export const jobOf = (buildId: string): BuildJob => ({
  buildId,
  stream: 's',
  image: 'cosa-lite:latest',
  script: 'true',
  resultToken: 'token',
  resources: { memoryBytes: 1024 ** 3, cpus: 1, pids: 100 },
  profile: 'unprivileged',
  network: 'none'
})
