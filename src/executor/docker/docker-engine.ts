import Docker from 'dockerode'
import type { Readable } from 'node:stream'
import { EngineError } from '../executor.js'
import { hardeningProblems, LABEL_BUILD, LABEL_OWNER, type ContainerSpec } from './container-spec.js'

// The only module that talks to the Docker engine. Every call carries a
// deadline; engine answers that mean "already done" (304 on stop, 404 on
// remove) are success here, and everything else becomes an EngineError
// (executor.ts) whose kind the build runner can turn into a failure reason.

export interface ContainerState {
  id: string
  running: boolean
  paused: boolean
  exitCode: number
  oomKilled: boolean
  status: string
  startedAt: string
  finishedAt: string
}

/** What `docker info` says of the engine. */
export interface EngineInfo {
  cpus: number
  memoryBytes: number
  /** The engine host's `uname -m`, as the engine reports it. */
  architecture: string
}

export interface OwnedContainer {
  id: string
  name: string
  buildId: string
  state: string
}


/** The payload of a non-TTY log buffer: frames of an 8-byte header and data. */
function demuxFrames (buf: Buffer) {
  const out: Buffer[] = []
  for (let i = 0; i + 8 <= buf.length;) {
    const size = buf.readUInt32BE(i + 4)
    out.push(buf.subarray(i + 8, i + 8 + size))
    i += 8 + size
  }
  return Buffer.concat(out).toString('utf8')
}

interface DockerodeError { statusCode?: number, code?: string, name?: string, json?: { message?: string }, message: string }

function classify (err: unknown, what: string): EngineError {
  if (err instanceof EngineError) return err
  const e = err as DockerodeError
  const detail = e.json?.message ?? e.message
  if (e.name === 'AbortError' || e.name === 'TimeoutError' || e.code === 'ABORT_ERR') {
    return new EngineError('timeout', `${what}: the Docker engine did not answer in time`, { cause: err })
  }
  if (['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ETIMEDOUT'].includes(e.code ?? '')) {
    return new EngineError('unavailable', `${what}: the Docker engine is unavailable (${e.code})`, { cause: err })
  }
  // A TCP engine that will not take our certificate, or whose certificate we will not take.
  if (e.statusCode === undefined && /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/.test(e.code ?? '')) {
    return new EngineError('refused', `${what}: the TLS handshake with the Docker engine failed (${e.code})`, { cause: err })
  }
  if (e.statusCode === 404) return new EngineError('not_found', `${what}: ${detail}`, { cause: err })
  if (e.statusCode === 409) return new EngineError('conflict', `${what}: ${detail}`, { cause: err })
  // 400: the engine will not take these parameters (a CPU limit beyond its CPUs, say).
  if (e.statusCode === 400) return new EngineError('invalid', `${what}: ${detail}`, { cause: err })
  return new EngineError('refused', `${what}: ${detail}`, { cause: err })
}

/**
 * docker-modem destroys a response on abort but never settles the call's
 * promise once the response has begun, nor when the engine dies mid-answer:
 * the signal has to end the wait itself.
 */
function settledBy<T> (call: Promise<T>, signal: AbortSignal): Promise<T> {
  call.catch(() => undefined)
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason instanceof Error ? signal.reason : new DOMException('aborted', 'AbortError'))
    if (signal.aborted) return abort()
    signal.addEventListener('abort', abort, { once: true })
    call.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
  })
}

/** A local socket, or TCP with mutual TLS (PEM contents, not paths: see connection.ts). */
export type DockerConnection =
  | { socketPath: string }
  | { host: string, port: number, ca: Buffer, cert: Buffer, key: Buffer }

export class DockerEngine {
  readonly #docker: Docker
  readonly #timeoutMs: number

  constructor (opts: DockerConnection & { callTimeoutMs: number }) {
    // Explicit, never from DOCKER_HOST/DOCKER_CERT_PATH: each engine is configured on its own.
    this.#docker = 'socketPath' in opts
      ? new Docker({ socketPath: opts.socketPath })
      : new Docker({ protocol: 'https', host: opts.host, port: opts.port, ca: opts.ca, cert: opts.cert, key: opts.key })
    this.#timeoutMs = opts.callTimeoutMs
  }

  #deadline (signal?: AbortSignal) {
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    return signal ? AbortSignal.any([signal, timeout]) : timeout
  }

  async #call<T> (what: string, fn: (abortSignal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    const deadline = this.#deadline(signal)
    try {
      return await settledBy(fn(deadline), deadline)
    } catch (err) {
      throw classify(err, what)
    }
  }

  /** `signal` may end the wait sooner than the call deadline (a metrics scrape cannot wait 30 s). */
  async ping (signal?: AbortSignal) {
    // @types/dockerode omits abortSignal on ping, info and image inspect; dockerode honours it.
    await this.#call('ping', (abortSignal) => (this.#docker.ping as (o: object) => Promise<unknown>).call(this.#docker, { abortSignal }), signal)
  }

  /** The engine's version (`docker version`'s Server.Version). */
  async version (signal?: AbortSignal) {
    const answer = await this.#call('version', (abortSignal) =>
      (this.#docker.version as (o: object) => Promise<{ Version: string }>).call(this.#docker, { abortSignal }), signal)
    return answer.Version
  }

  /** What the engine can give one container, and the architecture it runs them on. */
  async info (): Promise<EngineInfo> {
    const info = await this.#call('info', (abortSignal) =>
      (this.#docker.info as (o: object) => Promise<{ NCPU: number, MemTotal: number, Architecture: string }>).call(this.#docker, { abortSignal }))
    return { cpus: info.NCPU, memoryBytes: info.MemTotal, architecture: info.Architecture }
  }

  /** The user the image runs as ("" for root), or undefined when the image is not on the engine. */
  async imageUser (ref: string): Promise<string | undefined> {
    try {
      const info = await this.#call(`inspect image ${ref}`, (abortSignal) => {
        const image = this.#docker.getImage(ref)
        return (image.inspect as (o: object) => Promise<Docker.ImageInspectInfo>).call(image, { abortSignal })
      })
      return info.Config?.User ?? ''
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_found') return undefined
      throw err
    }
  }

  /**
   * The numeric uid and gid of `user` in `image` (real cosa runs as the named
   * user `builder`), from `id` in a short-lived container (container-spec.ts
   * userProbeSpec). It is labelled with the build it serves, so a reconcile
   * removes it once that build has ended, should the service die meanwhile.
   */
  async userIds (spec: ContainerSpec, user: string): Promise<{ uid: number, gid: number }> {
    const { code, stdout } = await this.runOnce(spec)
    const [uid, gid] = stdout.trim().split('\n').map(Number)
    if (code !== 0 || !Number.isInteger(uid) || !Number.isInteger(gid)) {
      throw new EngineError('refused', `user ${user} does not exist in image ${spec.Image}`)
    }
    return { uid: uid!, gid: gid! }
  }

  /**
   * Runs a short-lived container to its end and removes it: its exit status
   * and what it printed. `before` runs between create and start (to put
   * files into it).
   */
  async runOnce (spec: ContainerSpec, before?: (id: string) => Promise<void>): Promise<{ code: number, stdout: string }> {
    const id = await this.create(spec)
    try {
      await before?.(id)
      await this.start(id)
      const code = await this.wait(id, AbortSignal.timeout(this.#timeoutMs))
      const raw = await this.#call(`logs of container ${id}`, (abortSignal) =>
        this.#docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, abortSignal }) as unknown as Promise<Buffer>)
      return { code, stdout: demuxFrames(raw) }
    } finally {
      await this.remove(id)
    }
  }

  /** Creates the named volume, or finds it (the engine answers the existing one). */
  async ensureVolume (name: string, labels: Record<string, string>) {
    await this.#call(`create volume ${name}`, (abortSignal) =>
      this.#docker.createVolume({ Name: name, Labels: labels, abortSignal } as Docker.VolumeCreateOptions))
  }

  /** Deletes the named volume; already gone is fine, one a container still mounts is a conflict. */
  async removeVolume (name: string) {
    try {
      await this.#call(`remove volume ${name}`, (abortSignal) => this.#docker.getVolume(name).remove({ abortSignal }))
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_found') return
      throw err
    }
  }

  /** Extracts the tar `archive` into the container (created, or stopped) at `path`, which must exist there. */
  async putArchive (id: string, path: string, archive: Readable) {
    // The engine answers once it has extracted everything.
    await this.#call(`copy into container ${id}`, (abortSignal) => this.#docker.getContainer(id).putArchive(archive, { path, abortSignal }))
  }

  /**
   * `path` of the container (running or not) as a tar stream, read at the
   * caller's pace until `signal`; undefined when there is no such path. The
   * deadline bounds the wait for the engine to begin answering.
   */
  async getArchive (id: string, path: string, signal: AbortSignal): Promise<Readable | undefined> {
    // As logSnapshot: the request lives as long as the caller reads, unless
    // the engine has not begun to answer by the deadline.
    const request = new AbortController()
    const end = () => request.abort()
    if (signal.aborted) end()
    else signal.addEventListener('abort', end, { once: true })
    try {
      const archive = await this.#call(`copy ${path} from container ${id}`, (deadline) => {
        deadline.addEventListener('abort', end, { once: true })
        return (this.#docker.getContainer(id).getArchive({ path, abortSignal: request.signal }) as unknown as Promise<Readable>)
          .finally(() => deadline.removeEventListener('abort', end))
      }, signal)
      archive.once('close', () => signal.removeEventListener('abort', end))
      return archive
    } catch (err) {
      end()
      signal.removeEventListener('abort', end)
      if (err instanceof EngineError && err.kind === 'not_found') return undefined
      throw err
    }
  }

  async create (spec: ContainerSpec) {
    const problems = hardeningProblems(spec)
    if (problems.length) throw new EngineError('refused', `container ${spec.name} is not hardened: ${problems.join('; ')}`)
    const container = await this.#call(`create container ${spec.name}`,
      (abortSignal) => this.#docker.createContainer({ ...spec, abortSignal } as Docker.ContainerCreateOptions))
    return container.id
  }

  async start (id: string) {
    await this.#call(`start container ${id}`, (abortSignal) => this.#docker.getContainer(id).start({ abortSignal }))
  }

  /**
   * Resolves when the container is not running. The engine's wait has no
   * deadline of its own, so `signal` bounds it; a wait that breaks (engine
   * restart) rejects, and callers must re-inspect rather than assume an exit.
   */
  async wait (id: string, signal: AbortSignal) {
    try {
      const res = await settledBy(this.#docker.getContainer(id).wait({ condition: 'not-running', abortSignal: signal }), signal)
      return res.StatusCode as number
    } catch (err) {
      throw classify(err, `wait for container ${id}`)
    }
  }

  async inspect (id: string): Promise<ContainerState | undefined> {
    try {
      const info = await this.#call(`inspect container ${id}`,
        (abortSignal) => this.#docker.getContainer(id).inspect({ abortSignal }))
      return {
        id: info.Id,
        running: info.State.Running,
        paused: info.State.Paused,
        exitCode: info.State.ExitCode,
        oomKilled: info.State.OOMKilled,
        status: info.State.Status,
        startedAt: info.State.StartedAt,
        finishedAt: info.State.FinishedAt
      }
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_found') return undefined
      throw err
    }
  }

  /**
   * The container's log as the engine holds it now (not followed), raw
   * multiplexed frames with timestamps, from `since` ("seconds.nanoseconds",
   * inclusive) and of at most the last `tail` lines. The engine reads a
   * snapshot of its files; the caller reads the body at its own pace (TCP
   * holds the engine back) and ends it with `signal`.
   */
  async logSnapshot (id: string, opts: { since?: string | undefined, tail?: number | undefined }, signal: AbortSignal): Promise<Readable> {
    // The request lives as long as the caller reads, unless the engine has
    // not begun to answer by the deadline.
    const request = new AbortController()
    const end = () => request.abort()
    if (signal.aborted) end()
    else signal.addEventListener('abort', end, { once: true })
    // dockerode buffers a log that is not followed into one Buffer; dialled
    // directly, the answer stays a stream.
    const raw = await this.#call(`logs of container ${id}`, (deadline) => new Promise<Readable>((resolve, reject) => {
      deadline.addEventListener('abort', end, { once: true })
      this.#docker.modem.dial({
        path: `/containers/${id}/logs?`,
        method: 'GET',
        isStream: true,
        abortSignal: request.signal,
        statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
        options: { follow: false, stdout: true, stderr: true, timestamps: true, since: opts.since ?? 0, tail: opts.tail ?? 'all' }
      } as never, (err: unknown, data: unknown) => {
        deadline.removeEventListener('abort', end)
        if (err) reject(err)
        else resolve(data as Readable)
      })
    }), signal).catch((err) => {
      end()
      throw err
    })
    const destroy = () => raw.destroy()
    if (request.signal.aborted) destroy()
    else request.signal.addEventListener('abort', destroy, { once: true })
    raw.once('close', () => {
      request.signal.removeEventListener('abort', destroy)
      signal.removeEventListener('abort', end)
    })
    return raw
  }

  /** SIGTERM, then SIGKILL after graceSeconds. Already stopped or gone is fine. */
  async stop (id: string, graceSeconds: number) {
    try {
      const deadline = AbortSignal.timeout(this.#timeoutMs + graceSeconds * 1000)
      await this.#docker.getContainer(id).stop({ t: graceSeconds, abortSignal: deadline })
    } catch (err) {
      const e = err as DockerodeError
      if (e.statusCode === 304 || e.statusCode === 404) return
      throw classify(err, `stop container ${id}`)
    }
  }

  async remove (id: string) {
    try {
      await this.#call(`remove container ${id}`,
        (abortSignal) => this.#docker.getContainer(id).remove({ force: true, v: true, abortSignal }))
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'not_found') return
      // 409: removal already in progress.
      if (err instanceof EngineError && err.kind === 'conflict') return
      throw err
    }
  }

  async listOwned (owner: string): Promise<OwnedContainer[]> {
    const list = await this.#call('list containers', (abortSignal) => this.#docker.listContainers({
      all: true, filters: { label: [`${LABEL_OWNER}=${owner}`] }, abortSignal
    }))
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      buildId: c.Labels[LABEL_BUILD] ?? '',
      state: c.State
    }))
  }
}
