import { lstat, readlink, realpath } from 'node:fs/promises'
import { join } from 'node:path'
import { metaProblems, type Meta } from '../cosa/meta.js'
import { errors } from '../errors.js'
import type { EngineRegistry } from '../executor/engine-registry.js'
import type { Database } from '../store/repositories.js'
import type { BuildLifecycle } from './lifecycle.js'
import type { Artifact, Build, PostedResult } from './model.js'
import { hashToken, tokenMatches } from './result-token.js'
import { secondaryArch } from './run/arches.js'

// What a build container posts when it ends: meta.json (verbatim, as the
// body) and whether it made a new build. The service checks it against the
// workdir it shares with the job (as the build's engine says where that is)
// before believing any of it.

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]*$/

export class ResultIntake {
  readonly #store: Database
  readonly #lifecycle: BuildLifecycle
  readonly #engines: Pick<EngineRegistry, 'get'>

  constructor (deps: { store: Database, lifecycle: BuildLifecycle, engines: Pick<EngineRegistry, 'get'> }) {
    this.#store = deps.store
    this.#lifecycle = deps.lifecycle
    this.#engines = deps.engines
  }

  /**
   * `ok` when `token` is the one minted for this running build. A token is
   * forgotten when its build ends, so a finished build's token is unknown.
   */
  async authorize (buildId: string, token: string): Promise<'ok' | 'other-build' | 'unknown'> {
    const expected = await this.#store.builds.resultTokenHash(buildId)
    if (expected && tokenMatches(token, expected)) return 'ok'
    const owner = await this.#store.builds.buildByResultTokenHash(hashToken(token))
    return owner !== undefined && owner !== buildId ? 'other-build' : 'unknown'
  }

  async accept (buildId: string, outcome: PostedResult['outcome'], arch: string, body: string) {
    const build = await this.#store.builds.getBuild(buildId)
    if (!build) throw errors.buildNotFound(buildId)
    if (build.state !== 'running') throw errors.buildNotRunning(buildId, build.state)
    try {
      const result = await this.#check(build, outcome, arch, body)
      const recorded = await this.#store.builds.recordResult(buildId, { outcome, result, metaJson: body })
      if (!recorded) throw errors.buildNotRunning(buildId, (await this.#store.builds.getBuild(buildId))!.state)
      return recorded
    } catch (err) {
      if ((err as { code?: string }).code === 'BLD_RESULT_REJECTED') {
        await this.#lifecycle.noteRejection(buildId, `result rejected: ${(err as Error).message}`)
      }
      throw err
    }
  }

  async #check (build: Build, outcome: PostedResult['outcome'], arch: string, body: string) {
    let meta: Meta
    try {
      meta = JSON.parse(body)
    } catch {
      throw errors.resultRejected('meta.json is not JSON')
    }
    const problems = metaProblems(meta)
    if (problems.length) throw errors.resultRejected(`meta.json does not match cosa's schema: ${problems.join('; ')}`)
    if (!SAFE_NAME.test(meta.buildid) || !SAFE_NAME.test(arch)) throw errors.resultRejected('buildid or arch has unsafe characters')
    const basearch = meta['coreos-assembler.basearch']
    if (basearch !== undefined && basearch !== arch) {
      throw errors.resultRejected(`meta.json is for ${basearch}, the result says ${arch}`)
    }
    const engine = this.#engines.get(build.engine)
    if (!engine) throw errors.resultRejected(`the engine ${build.engine} that runs the build is not configured`)
    const workdir = engine.workdir(build.stream, secondaryArch(build))
    const latest = await readlink(join(workdir, 'builds', 'latest')).catch(() => undefined)
    if (latest !== meta.buildid) {
      throw errors.resultRejected(`builds/latest is ${latest ?? 'missing'}, not ${meta.buildid}`)
    }
    const dir = join('builds', meta.buildid, arch)
    // The container owns the workdir: a directory on the way may be a symlink
    // out of it. Every artifact must resolve to a regular file inside.
    const root = await realpath(workdir)
    const artifacts: Artifact[] = []
    for (const [name, image] of Object.entries(meta.images)) {
      if (!SAFE_NAME.test(image.path)) throw errors.resultRejected(`images.${name}.path must be a plain file name`)
      const path = join(workdir, dir, image.path)
      const real = await realpath(path).catch(() => undefined)
      const st = real === undefined ? undefined : await lstat(real)
      // An unchanged build may be one synced from the store, which leaves its
      // images there; publishing checks that the store has them.
      if (!st && outcome === 'unchanged') {
        artifacts.push({ name, path: join(dir, image.path), sha256: image.sha256, size: image.size ?? 0 })
        continue
      }
      if (!st?.isFile()) throw errors.resultRejected(`images.${name}: ${join(dir, image.path)} does not exist`)
      if (!real!.startsWith(root + '/')) throw errors.resultRejected(`images.${name}: ${join(dir, image.path)} leads out of the workdir`)
      if (image.size !== undefined && image.size !== st.size) {
        throw errors.resultRejected(`images.${name}: ${image.path} has ${st.size} bytes, meta.json says ${image.size}`)
      }
      artifacts.push({ name, path: join(dir, image.path), sha256: image.sha256, size: st.size })
    }
    return { cosaBuildId: meta.buildid, arch, ostreeCommit: meta['ostree-commit'], artifacts }
  }
}
