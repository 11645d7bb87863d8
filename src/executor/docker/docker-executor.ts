import { execa } from 'execa'
import { existsSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import type { Config } from '../../config.js'
import { basearch } from '../../cosa/basearch.js'
import type { DataDir } from '../../data-dir.js'
import { EngineError, type BuildJob, type Executor, type JobState, type LogSnapshot, type LogSnapshotOptions, type Workspace, type WorkspaceSync } from '../executor.js'
import { containerName, containerSpec, deviceProbeSpec, userProbeSpec } from './container-spec.js'
import type { ContainerState, DockerEngine } from './docker-engine.js'
import { LogFrameParser } from './log-frames.js'
import { VolumeWorkspace } from './volume-workspace.js'

// A build as a container on a Docker engine. With the `host` workspace (an
// engine beside the service), the stream's workdir, its config mirror and
// the result socket are bind-mounted from the service's data directory, and
// the workdir is handed to the image's user on the host. With `volume` (an
// engine elsewhere, over TCP), nothing of the service's host is mounted:
// the workdir is a named volume on the engine, copied to and from through
// the API (volume-workspace.ts). Every engine call goes through
// DockerEngine, with its deadline.

/** Passed through when the engine's host has them: qemu's acceleration, and FUSE for cosa's supermin paths. */
const HOST_DEVICES = ['/dev/kvm', '/dev/fuse']
/** Container states that mean someone is deleting it. */
const GOING = new Set(['removing', 'dead'])

export interface DockerExecutorOptions {
  name: string
  engine: DockerEngine
  dataDir: DataDir
  /** This installation's id: the owner label of every container it makes. */
  owner: string
  builds: Pick<Config['builds'], 'resultUrl' | 'stopGraceSeconds' | 'logFileBytes' | 'logFiles'>
  /** The basearch builds run as, when it is not the engine's own (an emulated arm64 on an x86_64 host). */
  arch?: string | undefined
  /**
   * Where builds' files live: `host` (the default) bind-mounts the data
   * directory's, for an engine on the service's host; `volume` keeps them
   * in named volumes on the engine, for a remote one.
   */
  workspace?: 'host' | 'volume'
  /** The devices passed through where the engine's host has them (default: /dev/kvm, /dev/fuse). */
  devices?: string[]
}

const jobState = (state: ContainerState | undefined): JobState | undefined => state && {
  id: state.id, running: state.running, removing: GOING.has(state.status), exitCode: state.exitCode, oomKilled: state.oomKilled
}

/** The engine's multiplexed log answer as batches of frames; destroying it ends the request. */
function framesOf (raw: Readable): LogSnapshot {
  const parser = new LogFrameParser()
  const batches = (async function * () {
    for await (const chunk of raw) {
      const frames = [...parser.push(chunk as Buffer)]
      if (frames.length) yield frames
    }
  })()
  return { [Symbol.asyncIterator]: () => batches, destroy: (err) => raw.destroy(err) }
}

export class DockerExecutor implements Executor {
  readonly name: string
  readonly #opts: DockerExecutorOptions
  readonly #engine: DockerEngine
  #arch: string | undefined
  // Image and user -> ids, probed once per process.
  readonly #userIds = new Map<string, { uid: number, gid: number }>()
  /** Set for the `volume` workspace. */
  readonly #volumes: VolumeWorkspace | undefined
  /** What a remote engine's host has of the devices, probed once. */
  #remoteDevices: Promise<string[]> | undefined

  constructor (opts: DockerExecutorOptions) {
    this.name = opts.name
    this.#opts = opts
    this.#engine = opts.engine
    if (opts.workspace === 'volume') this.#volumes = new VolumeWorkspace({ engine: opts.engine, dataDir: opts.dataDir, owner: opts.owner })
  }

  ping (signal?: AbortSignal) { return this.#engine.ping(signal) }

  version (signal?: AbortSignal) { return this.#engine.version(signal) }

  async arch () {
    this.#arch ??= this.#opts.arch ?? basearch((await this.#engine.info()).architecture)
    return this.#arch
  }

  async capacity () {
    const { cpus, memoryBytes } = await this.#engine.info()
    return { cpus, memoryBytes }
  }

  imageUser (image: string) { return this.#engine.imageUser(image) }

  workdir (stream: string, arch?: string) { return this.#opts.dataDir.workdir(stream, arch) }

  /**
   * Makes the workdir the image user's (real cosa runs as uid 1000
   * `builder`); for a volume, applies the sync to it.
   */
  async prepareWorkspace (input: Workspace & { image: string, user: string, buildId: string, sync: WorkspaceSync }) {
    const ids = /^(|root|0)(:.*)?$/.test(input.user) ? undefined : await this.#ids(input)
    if (this.#volumes) return this.#volumes.push(input, ids)
    if (!ids) return
    const workdir = this.workdir(input.stream, input.arch)
    const st = await stat(workdir)
    if (st.uid === ids.uid && st.gid === ids.gid) return
    // A failure here ends the build `infrastructure` (the runner's catch-all).
    await execa('chown', ['-R', `${ids.uid}:${ids.gid}`, workdir])
  }

  async #ids (input: { image: string, user: string, buildId: string }) {
    const key = `${input.image}\0${input.user}`
    let ids = this.#userIds.get(key)
    if (!ids) {
      const spec = userProbeSpec({ image: input.image, user: input.user, owner: this.#opts.owner, buildId: input.buildId })
      ids = await this.#engine.userIds(spec, input.user)
      this.#userIds.set(key, ids)
    }
    return ids
  }

  async pullBuild (input: Workspace & { jobId: string, paths: string[], signal?: AbortSignal }) {
    return this.#volumes?.pull(input)
  }

  async receiveBuild (input: Workspace & { archive: Readable, paths: string[] }) {
    return this.#volumes?.receive(input)
  }

  async removeWorkspace (stream: string, arch?: string) {
    await this.#volumes?.remove({ stream, arch })
  }

  async create (job: BuildJob) {
    const id = await this.#create(job, await this.#devices(job))
    // The config at the build's commit travels with the job; the job reads it at start.
    await this.#volumes?.putConfig(id, job.stream)
    return id
  }

  /**
   * An engine beside the service shares its /dev. Another host's is asked
   * of the engine: a device its host lacks would fail every build there.
   */
  async #devices (job: BuildJob) {
    const candidates = this.#opts.devices ?? HOST_DEVICES
    if (!this.#volumes) return candidates.filter((d) => existsSync(d))
    this.#remoteDevices ??= this.#probeDevices(candidates, job).catch((err: unknown) => {
      this.#remoteDevices = undefined
      throw err
    })
    return this.#remoteDevices
  }

  async #probeDevices (candidates: string[], job: BuildJob) {
    const found: string[] = []
    for (const device of candidates) {
      const spec = deviceProbeSpec({ image: job.image, device, owner: this.#opts.owner, buildId: job.buildId })
      try {
        if ((await this.#engine.runOnce(spec)).code === 0) found.push(device)
      } catch (err) {
        // "error gathering device information while adding custom device": not on that host.
        if (!(err instanceof EngineError && /device information/i.test(err.message))) throw err
      }
    }
    return found
  }

  async #create (job: BuildJob, devices: string[]) {
    try {
      return await this.#engine.create(this.#spec(job, devices))
    } catch (err) {
      // The name is the build's: a container of that name is this build's
      // own, created by an earlier attempt that did not record it.
      if (!(err instanceof EngineError && err.kind === 'conflict')) throw err
      const existing = await this.#engine.inspect(containerName(job.buildId))
      if (!existing) throw err
      return existing.id
    }
  }

  start (id: string) { return this.#engine.start(id) }

  wait (id: string, signal: AbortSignal) { return this.#engine.wait(id, signal) }

  async inspect (id: string) { return jobState(await this.#engine.inspect(id)) }

  findByBuild (buildId: string) { return this.inspect(containerName(buildId)) }

  async logSnapshot (id: string, opts: LogSnapshotOptions, signal: AbortSignal) {
    return framesOf(await this.#engine.logSnapshot(id, opts, signal))
  }

  stop (id: string, graceSeconds: number) { return this.#engine.stop(id, graceSeconds) }

  remove (id: string) { return this.#engine.remove(id) }

  async listOwned () {
    return (await this.#engine.listOwned(this.#opts.owner)).map(({ id, name, buildId }) => ({ id, name, buildId }))
  }

  #spec (job: BuildJob, devices: string[]) {
    const { dataDir, owner, builds } = this.#opts
    return containerSpec({
      buildId: job.buildId,
      stream: job.stream,
      owner,
      image: job.image,
      script: job.script,
      resultToken: job.resultToken,
      env: job.env,
      resultUrl: builds.resultUrl,
      workspace: this.#volumes
        ? { kind: 'volume', volume: this.#volumes.volume(job) }
        : { kind: 'host', workdir: this.workdir(job.stream, job.arch), mirror: dataDir.mirror(job.stream), apiSocketDir: dataDir.apiSocketDir },
      profile: job.profile,
      networkMode: job.network,
      devices,
      ...job.resources,
      stopGraceSeconds: builds.stopGraceSeconds,
      log: { fileBytes: builds.logFileBytes, files: builds.logFiles }
    })
  }
}
