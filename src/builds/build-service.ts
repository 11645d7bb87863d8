import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { SpaceGuard } from '../artifacts/space-guard.js'
import { errors } from '../errors.js'
import type { Database } from '../store/repositories.js'
import type { BuildState } from './build-state.js'
import { isTerminal } from './build-state.js'
import { newBuildId } from './build-id.js'
import { FinishedBuilds } from './finished-builds.js'
import type { BootTestFile, LogStore } from '../logs/log-store.js'
import type { BuildLifecycle } from './lifecycle.js'
import type { WaitingFor } from './scheduler.js'
import type { Build, BuildRequest } from './model.js'

export interface BuildView extends Build {
  queuePosition?: number | undefined
  waitingFor?: WaitingFor | undefined
  pinned?: boolean | undefined
}

export interface SubmitOptions {
  idempotencyKey?: string | undefined
  /** Who is submitting (a token hash): idempotency keys are per client. */
  clientScope: string
}

const fingerprint = (stream: string, request: BuildRequest) =>
  createHash('sha256').update(JSON.stringify([stream, request.force, request.skipPrune,
    request.version ?? null, request.commit ?? null, request.platforms ?? null])).digest('hex')

const encodeCursor = (seq: number) => Buffer.from(JSON.stringify({ s: seq })).toString('base64url')

function decodeCursor (cursor: string) {
  try {
    const { s } = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Number.isSafeInteger(s) && s > 0) return s as number
  } catch {}
  throw errors.invalidRequest('querystring/cursor: not a cursor returned by this API')
}

export class BuildService {
  readonly #store: Database
  readonly #lifecycle: BuildLifecycle
  readonly #supervising: (id: string) => boolean
  readonly #logs: LogStore
  readonly #wake: () => void
  readonly #now: () => Date
  readonly #space: SpaceGuard
  readonly #waitingFor: (buildId: string) => WaitingFor | undefined
  readonly #finished = new FinishedBuilds()

  constructor (deps: {
    store: Database
    lifecycle: BuildLifecycle
    /** Whether this process still writes the build's log (it notes the final state after writing it). */
    supervising: (id: string) => boolean
    logs: LogStore
    space: SpaceGuard
    wake: () => void
    /** What holds all queued builds back (the scheduler's gate), if anything. */
    waitingFor: (buildId: string) => WaitingFor | undefined
    now: () => Date
  }) {
    this.#waitingFor = deps.waitingFor
    this.#store = deps.store
    this.#lifecycle = deps.lifecycle
    this.#supervising = deps.supervising
    this.#logs = deps.logs
    this.#space = deps.space
    this.#wake = deps.wake
    this.#now = deps.now
  }

  async submit (stream: string, request: BuildRequest, opts: SubmitOptions) {
    if (!await this.#store.streams.getStream(stream)) throw errors.streamNotFound(stream)
    const space = await this.#space.check()
    if (!space.ok) throw errors.storageLow(space.message)
    const claim = opts.idempotencyKey === undefined
      ? undefined
      : { scope: opts.clientScope, key: opts.idempotencyKey, fingerprint: fingerprint(stream, request) }
    const outcome = await this.#lifecycle.submit(
      { id: newBuildId(this.#now().getTime()), stream, request, createdAt: this.#now().toISOString() }, claim)
    if (outcome.kind === 'mismatch') throw errors.idempotencyMismatch()
    const build = await this.view(outcome.build)
    if (outcome.kind === 'created') this.#wake()
    return { build, replayed: outcome.kind === 'replayed' }
  }

  async view (build: Build): Promise<BuildView> {
    if (build.state === 'queued') {
      const { position, streamBusy } = await this.#store.builds.queueState(build)
      return { ...build, queuePosition: position, waitingFor: streamBusy ? 'stream_busy' : this.#waitingFor(build.id) ?? 'slot' }
    }
    if (build.result) return { ...build, pinned: (await this.#store.pins.pinnedBuilds(build.stream)).has(build.result.cosaBuildId) }
    return build
  }

  /** Idempotent; the pin is on the cosa build, shared by every build that made or found it. */
  async pin (id: string, pinned: boolean) {
    const build = await this.get(id)
    if (!build.result || (build.state !== 'succeeded' && build.state !== 'unchanged')) {
      throw errors.notPublished(id, build.state)
    }
    await this.#store.pins.setPin(build.stream, build.result.cosaBuildId, pinned, this.#now().toISOString())
    // Every build that made or found this cosa build shows the pin.
    this.#finished.forgetStream(build.stream)
    return this.get(id)
  }

  /** Its builds were deleted (DELETE /v1/streams/{stream}?purge=true): answers kept in memory go too. */
  forgetStream (stream: string) {
    this.#finished.forgetStream(stream)
  }

  /** A finished build kept in memory (FinishedBuilds), if it is. */
  finished (id: string) {
    return this.#finished.get(id)
  }

  /** A finished build is the same object at every call until its pin changes (FinishedBuilds). */
  async get (id: string) {
    const finished = this.#finished.get(id)
    if (finished !== undefined) return finished
    const build = await this.#store.builds.getBuild(id)
    if (!build) throw errors.buildNotFound(id)
    return this.#finished.remember(await this.view(build))
  }

  async list (query: { stream?: string | undefined, state?: BuildState | undefined, limit: number, cursor?: string | undefined }) {
    const builds = await this.#store.builds.listBuilds({
      stream: query.stream,
      state: query.state,
      limit: query.limit + 1,
      beforeSeq: query.cursor === undefined ? undefined : decodeCursor(query.cursor)
    })
    const page = builds.slice(0, query.limit)
    return {
      builds: await Promise.all(page.map((b) => this.view(b))),
      nextCursor: builds.length > query.limit ? encodeCursor(page.at(-1)!.seq) : undefined
    }
  }

  /** Idempotent: a finished build is returned as it is. A running one is stopped by its supervisor. */
  async cancel (id: string) {
    const build = await this.get(id)
    if (!isTerminal(build.state)) await this.#lifecycle.requestCancel((await this.#store.builds.getBuild(id))!)
    return this.get(id)
  }

  async meta (id: string) {
    await this.get(id)
    const meta = await this.#store.builds.getMeta(id)
    if (meta === undefined) throw errors.metaNotFound(id)
    return meta
  }

  async log (id: string, offset: number, follow: boolean, signal: AbortSignal): Promise<{ size: number, body: Readable }> {
    await this.get(id)
    const isDone = async () => isTerminal((await this.#store.builds.getBuild(id))!.state) && !this.#supervising(id)
    return {
      size: await this.#logs.size(id),
      body: this.#logs.read(id, offset, follow, isDone, signal)
    }
  }

  /** The boot test's console or journal, kept with the build's log whether or not it published. */
  async bootTestFile (id: string, name: BootTestFile) {
    await this.get(id)
    const kept = await this.#logs.attachment(id, name)
    if (kept === undefined) throw errors.artifactNotFound(`build ${id} has no boot-test ${name} (no boot test ran, or it left none)`)
    return kept
  }
}
