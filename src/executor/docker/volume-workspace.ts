import { createHash } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { Readable } from 'node:stream'
import type { DataDir } from '../../data-dir.js'
import { EngineError, JOB_PATHS, type PulledFile, type Workspace, type WorkspaceSync } from '../executor.js'
import { INCOMING, LABEL_OWNER, LABEL_STREAM, workspaceSyncSpec } from './container-spec.js'
import type { DockerEngine } from './docker-engine.js'
import { ArchiveError, extractArchive, packArchive } from './workspace-archive.js'

// A stream's workdir as a named volume on the engine, for engines that do
// not share the service's disk: nothing of the service's host is mounted
// into a container. The service keeps its own copy of each workdir (the
// data directory's, as for a local engine) and copies through the Docker
// API alone: the store sync goes in before the build (putArchive into a
// short sync container that applies it to the volume), the config mirror
// into the build container before it starts, and the build's files come
// back after it ends (getArchive, streamed to disk and hashed on the way).

/** A relative path without "..", empty parts or a line break: safe in the volume and in the sync's lists. */
const SAFE_PATH = /^(?!.*(^|\/)\.\.?(\/|$))[^/\n\0][^\n\0]*$/

function checkPaths (paths: readonly string[]) {
  for (const path of paths) {
    if (!SAFE_PATH.test(path) || path.includes('//') || path.endsWith('/')) {
      throw new EngineError('invalid', `workspace path ${JSON.stringify(path)} is not a plain relative path`)
    }
  }
}

export interface VolumeWorkspaceOptions {
  engine: DockerEngine
  dataDir: DataDir
  owner: string
}

export class VolumeWorkspace {
  readonly #opts: VolumeWorkspaceOptions

  constructor (opts: VolumeWorkspaceOptions) {
    this.#opts = opts
  }

  /** The workspace's volume: this installation's (by a hash of its id), the stream's and a secondary arch's, by name. */
  volume (ws: Workspace) {
    const installation = createHash('sha256').update(this.#opts.owner).digest('hex').slice(0, 12)
    return `cosa-buildd-${installation}-${ws.stream}${ws.arch === undefined ? '' : `-${ws.arch}`}`
  }

  /** Makes the volume (once) and applies `sync` to it, files owned by `ids` (root when undefined). */
  async push (input: Workspace & { image: string, buildId: string, sync: WorkspaceSync }, ids?: { uid: number, gid: number }) {
    const { engine, dataDir, owner } = this.#opts
    const { paths, prune } = input.sync
    checkPaths([...paths, prune.dir, ...prune.keep])
    const volume = this.volume(input)
    await engine.ensureVolume(volume, { [LABEL_OWNER]: owner, [LABEL_STREAM]: input.stream })
    const workdir = dataDir.workdir(input.stream, input.arch)
    const archive = () => packArchive(
      paths.map((path) => ({ from: join(workdir, path), as: posix.join(INCOMING, path) })),
      [
        { as: `${INCOMING}.paths`, content: paths.map((p) => p + '\n').join('') },
        { as: `${INCOMING}.prune`, content: prune.dir + '\n' },
        { as: `${INCOMING}.keep`, content: prune.keep.map((k) => k + '\n').join('') }
      ],
      ids ?? { uid: 0, gid: 0 })
    const spec = workspaceSyncSpec({ image: input.image, volume, owner, buildId: input.buildId, ids })
    const { code, stdout } = await engine.runOnce(spec, (id) => engine.putArchive(id, JOB_PATHS.workdir, archive()))
    if (code !== 0) {
      throw new EngineError('refused', `syncing the workdir volume ${volume} failed (exit ${code}): ${stdout.trim().slice(-500)}`)
    }
  }

  remove (ws: Workspace) {
    return this.#opts.engine.removeVolume(this.volume(ws))
  }

  /** The stream's config mirror, into the created job at JOB_PATHS.config (read by the build's `cosa init`). */
  async putConfig (jobId: string, stream: string) {
    const archive = packArchive([{ from: this.#opts.dataDir.mirror(stream), as: JOB_PATHS.config.slice(1) }], [], { uid: 0, gid: 0 })
    await this.#opts.engine.putArchive(jobId, '/', archive)
  }

  /** `paths` of the job's workdir into the service's copy, replacing what was there. */
  async pull (input: Workspace & { jobId: string, paths: string[], signal?: AbortSignal | undefined }): Promise<PulledFile[]> {
    checkPaths(input.paths)
    const workdir = this.#opts.dataDir.workdir(input.stream, input.arch)
    const signal = input.signal ?? new AbortController().signal
    const files: PulledFile[] = []
    for (const path of input.paths) {
      const archive = await this.#opts.engine.getArchive(input.jobId, posix.join(JOB_PATHS.workdir, path), signal)
      if (!archive) {
        await rm(join(workdir, path), { recursive: true, force: true })
        continue
      }
      // Docker names the archive's entries from the path's last component.
      files.push(...await extractArchive(archive, workdir, [path], posix.dirname(path) === '.' ? '' : posix.dirname(path)))
    }
    return files
  }

  /** A job's own tar of `paths` of its workdir, into the service's copy, replacing what was there. */
  async receive (input: Workspace & { archive: Readable, paths: string[] }): Promise<PulledFile[]> {
    checkPaths(input.paths)
    try {
      return await extractArchive(input.archive, this.#opts.dataDir.workdir(input.stream, input.arch), input.paths)
    } catch (err) {
      if (err instanceof ArchiveError) throw new EngineError('invalid', `the build's upload was refused: ${err.message}`)
      throw err
    }
  }
}
