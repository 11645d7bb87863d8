import { existsSync } from 'node:fs'
import { execa } from 'execa'
import { mkdir, stat } from 'node:fs/promises'
import { PublishError, type Publisher } from '../artifacts/publisher.js'
import { hostArch, syncWorkdir } from '../artifacts/workdir-sync.js'
import type { Logger } from '../logger.js'
import { urlPolicy, type Config } from '../config.js'
import type { Meta } from '../cosa/meta.js'
import { DEFAULT_RECIPE, missingImages, renderScript, requiredImages } from '../cosa/recipe.js'
import type { DataDir } from '../data-dir.js'
import { ConfigError, type ConfigMirror } from '../git/config-mirror.js'
import { configUrlRefusal } from '../git/config-url.js'
import { containerName, containerSpec, MOUNTS, userProbeSpec } from '../runner/container-spec.js'
import { EngineError, type DockerEngine } from '../runner/docker-engine.js'
import { engineGoesAway, inspectPatiently, watchEngine } from '../runner/engine-watch.js'
import type { BuildPatch, Store } from '../store/store.js'
import { describeProblems, effectiveResources, resourceProblems } from '../streams/stream-fit.js'
import type { BuildState, FailureReason } from './build-state.js'
import type { BuildLogs } from './build-logs.js'
import { LogPump } from './log-pump.js'
import { SecretRedactor } from './log-sanitizer.js'
import { DEFAULT_KEEP, type Build, type BuildRequest, type BuildResult, type PostedResult, type Stream } from './model.js'
import { mintToken } from './result-token.js'

// Runs one build from claim to final state: resolve the config commit, create
// and start the container, follow its log, wait with the stream's deadline,
// then decide the outcome from the exit status and what the container posted.
// Shutdown detaches without touching the container; the next start adopts it.

export interface RunnerDeps {
  store: Store
  engine: DockerEngine
  mirror: ConfigMirror
  publisher: Publisher
  logs: BuildLogs
  dataDir: DataDir
  config: Config
  logger: Logger
  owner: string
  now: () => Date
}

const HOST_DEVICES = ['/dev/kvm', '/dev/fuse']
/** Container states that mean someone is deleting it. */
const GOING = new Set(['removing', 'dead'])
// How long a build whose container has ended waits for a stopped engine to
// come back before it is decided without it.
const ENGINE_RETURN_MS = 10 * 60_000

interface Prepared {
  /** As the container runs it: forced when the store's latest build lacks an image asked for. */
  request: BuildRequest
  resources: ReturnType<typeof effectiveResources>
}

interface Final {
  state: BuildState
  reason?: FailureReason
  message?: string
  exitCode?: number
  result?: BuildResult
}

const recipeOf = (stream: Stream) => stream.recipe.length ? stream.recipe : DEFAULT_RECIPE
const platformsOf = (build: Build, stream: Stream) => build.request.platforms ?? stream.platforms

const failed = (reason: FailureReason, message: string, exitCode?: number): Final =>
  ({ state: 'failed', reason, message, exitCode })

export class BuildRunner {
  readonly #deps: RunnerDeps
  readonly #active = new Map<string, AbortController>()
  readonly #settled = new Set<Promise<void>>()
  readonly #shutdown = new AbortController()
  // Image user name -> ids, resolved once per image (and user) per process.
  readonly #userIds = new Map<string, { uid: number, gid: number }>()
  // What each running build's log must never show: the stream's secrets and
  // the build's result token (a build that echoes its environment).
  readonly #redactors = new Map<string, SecretRedactor>()
  readonly #logPump: LogPump

  constructor (deps: RunnerDeps) {
    this.#deps = deps
    this.#logPump = new LogPump({
      engine: deps.engine,
      logs: deps.logs,
      logger: deps.logger,
      pollMs: deps.config.builds.logPollMs,
      stallMs: deps.config.docker.callTimeoutMs
    })
  }

  isActive (buildId: string) {
    return this.#active.has(buildId)
  }

  get activeCount () {
    return this.#active.size
  }

  /** Interrupts a running build's wait; the runner then stops its container. */
  requestCancel (buildId: string) {
    this.#active.get(buildId)?.abort()
  }

  /** Stops supervising without touching containers, for a graceful shutdown. */
  async detachAll () {
    this.#shutdown.abort()
    await Promise.allSettled([...this.#settled])
  }

  /** Runs a build the scheduler just claimed (state `running`). */
  run (build: Build) {
    return this.#track(build, (cancel) => this.#launch(build, cancel))
  }

  /** Resumes supervising a build whose container outlived a service restart. */
  adopt (build: Build, containerId: string) {
    return this.#track(build, async (cancel) => {
      const stream = await this.#deps.store.getStream(build.stream)
      this.#redactors.set(build.id, new SecretRedactor(Object.values(stream?.secrets ?? {})))
      await this.#deps.logs.note(build.id, 'service restarted; following the build container again')
      await this.#supervise(build, stream, containerId, cancel)
    })
  }

  /** Decides a build whose container exited while no service supervised it. */
  async finishExited (build: Build, containerId: string) {
    // Active meanwhile: an overlapping reconcile pass leaves it alone (two
    // copies of the log would write it twice).
    if (this.#active.has(build.id)) return
    this.#active.set(build.id, new AbortController())
    try {
      const state = await this.#deps.engine.inspect(containerId)
      if (state && !GOING.has(state.status)) await this.#copyRest(build, containerId)
      const final = state && !GOING.has(state.status)
        ? await this.#outcome(build, state.exitCode, state.oomKilled)
        : failed('lost', 'the build container disappeared while the service was down')
      await this.#removeContainer(build.id, containerId)
      await this.#finish(build, final)
    } finally {
      this.#active.delete(build.id)
    }
  }

  /** What the container printed while no service read its log. */
  async #copyRest (build: Build, containerId: string) {
    const stream = await this.#deps.store.getStream(build.stream)
    const redactor = new SecretRedactor(Object.values(stream?.secrets ?? {}))
    await this.#logPump.start(build.id, containerId, this.#shutdown.signal,
      redactor.active ? (line) => redactor.redact(line) : undefined).finish()
  }

  /**
   * Before the final state: a finished build has no container. A failed
   * removal does not hold the build back; the reconciler retries it.
   */
  async #removeContainer (buildId: string, containerId: string) {
    try {
      await this.#deps.engine.remove(containerId)
    } catch (err) {
      this.#deps.logger.warn({ err, buildId }, 'removing the build container failed; the reconciler will retry')
    }
  }

  #track (build: Build, fn: (cancel: AbortController) => Promise<void>) {
    const buildId = build.id
    if (this.#active.has(buildId)) return Promise.resolve()
    const cancel = new AbortController()
    this.#active.set(buildId, cancel)
    const done = fn(cancel)
      .catch(async (err) => {
        this.#deps.logger.error({ err, buildId }, 'build supervision failed')
        // A build never stays running because the service tripped; a
        // shutdown, though, leaves it to the next start.
        if (this.#shutdown.signal.aborted) return
        await this.#finish(build, failed('infrastructure', `the service failed to run the build: ${(err as Error).message}`))
          .catch(() => undefined)
      })
      .finally(() => {
        this.#active.delete(buildId)
        this.#redactors.delete(buildId)
        this.#settled.delete(done)
      })
    this.#settled.add(done)
    return done
  }

  async #launch (build: Build, cancel: AbortController) {
    const { store, engine, mirror, logs, dataDir, config } = this.#deps
    const stream = await store.getStream(build.stream)
    if (!stream) return this.#finish(build, failed('config_unavailable', `stream ${build.stream} no longer exists`))

    await logs.note(build.id, `resolving ${build.request.commit ?? stream.config.ref} in ${stream.config.url}`)
    // Checked again at each build: a name may resolve elsewhere since the stream was registered.
    const refusal = await configUrlRefusal(stream.config.url, urlPolicy(config))
    if (refusal) return this.#finish(build, failed('config_unavailable', `config repository refused: ${refusal}`))
    let commit: string
    try {
      await mirror.sync(stream.config.url, dataDir.mirror(stream.name))
      commit = await mirror.resolve(dataDir.mirror(stream.name), stream.config.ref, build.request.commit)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return this.#finish(build, failed('config_unavailable', `config repository: ${err.message}`))
    }
    await store.update(build.id, ['running'], { configCommit: commit })
    await logs.note(build.id, `config commit ${commit}`)
    if (await this.#cancelled(build.id, cancel)) return this.#finish(build, { state: 'cancelled' })

    try {
      const user = await engine.imageUser(stream.image)
      if (user === undefined) {
        return this.#finish(build, failed('image_unavailable',
          `builder image ${stream.image} is not on the Docker engine: build or load it (npm run image:cosa-lite)`))
      }
      const { token, hash } = mintToken()
      await store.update(build.id, ['running'], { resultTokenHash: hash })
      this.#redactors.set(build.id, new SecretRedactor([...Object.values(stream.secrets ?? {}), token]))
      const workdir = dataDir.workdir(stream.name)
      const prepared = await this.#prepare(build, stream, workdir)
      if ('state' in prepared) return this.#finish(build, prepared)
      if (!/^(|root|0)(:.*)?$/.test(user)) await this.#giveWorkdir(build.id, workdir, stream.image, user)
      const spec = containerSpec({
        buildId: build.id,
        stream: stream.name,
        owner: this.#deps.owner,
        image: stream.image,
        script: renderScript({
          recipe: recipeOf(stream),
          url: `file://${MOUNTS.config}`,
          ref: stream.config.ref,
          commit,
          request: prepared.request,
          platforms: platformsOf(build, stream)
        }),
        resultToken: token,
        env: stream.secrets,
        resultUrl: config.builds.resultUrl,
        workdir,
        mirror: dataDir.mirror(stream.name),
        apiSocketDir: dataDir.apiSocketDir,
        profile: config.builds.securityProfile,
        networkMode: stream.networkMode ?? config.builds.networkMode,
        devices: HOST_DEVICES.filter((d) => existsSync(d)),
        ...prepared.resources,
        stopGraceSeconds: config.builds.stopGraceSeconds,
        log: { fileBytes: config.builds.logFileBytes, files: config.builds.logFiles }
      })
      let containerId: string
      try {
        containerId = await engine.create(spec)
      } catch (err) {
        if (err instanceof EngineError && err.kind === 'invalid') {
          return this.#finish(build, failed('invalid_settings', `the Docker engine refused the stream's settings: ${err.message}`))
        }
        // The name is the build's: a container of that name is this build's
        // own, created by an earlier attempt that did not record it.
        if (!(err instanceof EngineError && err.kind === 'conflict')) throw err
        const existing = await engine.inspect(containerName(build.id))
        if (!existing) throw err
        containerId = existing.id
      }
      if (!await store.update(build.id, ['running'], { containerId })) {
        await engine.remove(containerId)
        return
      }
      try {
        await engine.start(containerId)
      } catch (err) {
        if (!(err instanceof EngineError) || err.kind !== 'refused') throw err
        await engine.remove(containerId)
        return this.#finish(build, failed('infrastructure',
          `the Docker engine refused to start the build container with the ${config.builds.securityProfile} ` +
          `security profile: ${err.message}`))
      }
      await this.#supervise(build, stream, containerId, cancel)
    } catch (err) {
      if (!(err instanceof EngineError)) throw err
      await this.#finish(build, failed('infrastructure', err.message))
    }
  }

  /**
   * Checks the stream's resources against the engine, and brings the workdir
   * in step with the store (the record of what exists).
   * When the store's latest build lacks an image this build asks for (a
   * platform added since), an unchanged outcome would not give the caller
   * that image: the build is forced, so it makes a complete new one.
   */
  async #prepare (build: Build, stream: Stream, workdir: string): Promise<Final | Prepared> {
    const { logs, engine } = this.#deps
    const capacity = await engine.capacity()
    const problems = resourceProblems(stream.resources, capacity)
    if (problems.length) return failed('invalid_settings', `the stream's settings do not fit the Docker engine: ${describeProblems(problems)}`)
    const resources = effectiveResources(stream.resources, capacity)
    await mkdir(workdir, { recursive: true })
    let sync
    try {
      sync = await syncWorkdir(this.#deps.publisher, stream.name, workdir, hostArch())
    } catch (err) {
      return failed('infrastructure', `reading the artifact store failed: ${(err as Error).message}`)
    }
    const { version } = build.request
    if (version !== undefined && sync.published.has(version)) {
      return failed('invalid_settings', `build ${version} is already in the artifact store: a build's version must be new`)
    }
    if (sync.removed.length) await logs.note(build.id, `removed unpublished builds from the workdir: ${sync.removed.join(', ')}`)
    if (sync.synced) await logs.note(build.id, `workdir synced from the artifact store: builds/latest is ${sync.synced}`)
    const lacking = sync.latest ? missingImages(sync.latest.images, requiredImages(recipeOf(stream), platformsOf(build, stream))) : []
    if (!lacking.length || build.request.force) return { request: build.request, resources }
    await logs.note(build.id, `the latest published build ${sync.latest!.buildid} has no ${lacking.join(', ')} image: ` +
      'building anew (--force) so that this build has every image it asks for')
    return { request: { ...build.request, force: true }, resources }
  }

  /** Makes the workdir the image user's: real cosa runs as uid 1000 `builder`. */
  async #giveWorkdir (buildId: string, workdir: string, image: string, user: string) {
    const key = `${image}\0${user}`
    let ids = this.#userIds.get(key)
    if (!ids) {
      ids = await this.#deps.engine.userIds(userProbeSpec({ image, user, owner: this.#deps.owner, buildId }), user)
      this.#userIds.set(key, ids)
    }
    const st = await stat(workdir)
    if (st.uid === ids.uid && st.gid === ids.gid) return
    // A failure here ends the build `infrastructure` (see #track).
    await execa('chown', ['-R', `${ids.uid}:${ids.gid}`, workdir])
  }

  async #cancelled (buildId: string, cancel: AbortController) {
    if (cancel.signal.aborted) return true
    return (await this.#deps.store.getBuild(buildId))?.cancelRequestedAt !== undefined
  }

  async #supervise (build: Build, stream: Stream | undefined, containerId: string, cancel: AbortController) {
    const { engine, logs, config, logger } = this.#deps
    const started = Date.parse(build.startedAt ?? this.#deps.now().toISOString())
    const timeoutSeconds = stream?.timeoutSeconds ?? config.builds.defaultTimeoutSeconds
    const timeout = AbortSignal.timeout(Math.max(0, started + timeoutSeconds * 1000 - this.#deps.now().getTime()))
    const shutdown = this.#shutdown.signal

    const logAbort = new AbortController()
    const pump = this.#pumpLogs(build.id, containerId, AbortSignal.any([logAbort.signal, shutdown]))
    if (await this.#cancelled(build.id, cancel)) cancel.abort()

    let ending: 'exit' | 'cancel' | 'timeout' = 'exit'
    let engineWasDown = false
    for (;;) {
      // A wait on an engine that died can hang with its connection half
      // open: a heartbeat turns that into a broken wait, which is re-inspected.
      const heartbeat = watchEngine(engine, config.docker.heartbeatMs, AbortSignal.any([cancel.signal, timeout, shutdown]))
      try {
        await engine.wait(containerId, AbortSignal.any([cancel.signal, timeout, shutdown, heartbeat.lost]))
        break
      } catch (err) {
        if (shutdown.aborted) {
          logAbort.abort()
          await pump.done
          return
        }
        if (cancel.signal.aborted || timeout.aborted) {
          ending = cancel.signal.aborted ? 'cancel' : 'timeout'
          await logs.note(build.id, ending === 'cancel'
            ? `cancel requested; stopping the container (grace ${config.builds.stopGraceSeconds}s)`
            : `timed out after ${timeoutSeconds}s; stopping the container`)
          await engine.stop(containerId, config.builds.stopGraceSeconds)
          break
        }
        // A broken wait says nothing about the container: look again.
        logger.warn({ err, buildId: build.id }, 'waiting for the build container failed; inspecting it')
        const { state, unreachable } = await inspectPatiently(engine, containerId, AbortSignal.any([timeout, shutdown, cancel.signal]))
        if (unreachable && !engineWasDown) {
          engineWasDown = true
          await logs.note(build.id, 'the Docker engine stopped answering during the build; waiting for it')
        }
        if (state === 'gone') {
          logAbort.abort()
          await pump.done
          return this.#finish(build, failed('lost', 'the build container disappeared'))
        }
        if (state === 'unknown' || !state.running) continue
      } finally {
        heartbeat.stop()
      }
    }

    const after = await inspectPatiently(engine, containerId, AbortSignal.any([shutdown, AbortSignal.timeout(ENGINE_RETURN_MS)]))
    // `docker rm -f` kills first and deletes after: a container on its way out is gone.
    const state = typeof after.state === 'object' && !GOING.has(after.state.status) ? after.state : undefined
    // A graceful engine shutdown stops its containers first (SIGTERM, as
    // `docker stop` does) and goes away a moment later: a signal death we
    // did not cause is only a build failure if the engine stays up.
    if (after.unreachable || (ending === 'exit' && state && !state.oomKilled && state.exitCode > 128 &&
        await engineGoesAway(engine, config.builds.engineProbeMs, shutdown))) engineWasDown = true
    // The pump reads the engine's log until it has nothing more (it waits
    // out an engine that went away, for a while).
    if (state) await pump.finish()
    logAbort.abort()
    await pump.done
    if (shutdown.aborted) return

    let final: Final
    if (ending === 'cancel') final = { state: 'cancelled' }
    else if (ending === 'timeout') final = failed('timeout', `the build ran longer than the stream's timeout of ${timeoutSeconds}s`)
    else if (after.state === 'unknown') final = failed('infrastructure', 'the Docker engine went away during the build and did not come back')
    else if (!state) final = failed('lost', 'the build container disappeared')
    else if (engineWasDown && state.exitCode > 128 && !state.oomKilled) {
      // An engine that stops kills its containers (unless live-restore keeps
      // them): a signal death then is the infrastructure's, not the build's.
      final = failed('infrastructure',
        `the Docker engine stopped during the build; the container ended with exit code ${state.exitCode}`, state.exitCode)
    } else final = await this.#outcome(build, state.exitCode, state.oomKilled)
    await this.#removeContainer(build.id, containerId)
    await this.#finish(build, final)
  }

  #pumpLogs (buildId: string, containerId: string, signal: AbortSignal) {
    const redactor = this.#redactors.get(buildId)
    return this.#logPump.start(buildId, containerId, signal, redactor?.active ? (line) => redactor.redact(line) : undefined)
  }

  async #outcome (build: Build, exitCode: number, oomKilled: boolean): Promise<Final> {
    if (oomKilled) return failed('oom', 'a process in the build container ran out of memory and was killed', exitCode)
    if (exitCode !== 0) return failed('exit_code', `the build exited with code ${exitCode}; the log has the details`, exitCode)
    const posted = await this.#deps.store.postedResult(build.id)
    if (!posted) {
      const message = (await this.#deps.store.getBuild(build.id))?.message
      return failed('invalid_result', message ?? 'the build exited 0 without posting a valid result', exitCode)
    }
    return this.#publish(build, posted, exitCode)
  }

  /**
   * A build counts only once the store has it: until then it is not
   * `succeeded`. When cosa found nothing changed but the store lacked that
   * build (its first publish failed), storing it now makes it new to every
   * reader of the store, so the build is `succeeded`, not `unchanged`.
   */
  async #publish (build: Build, posted: PostedResult, exitCode: number): Promise<Final> {
    const { store, logs, dataDir } = this.#deps
    const stream = await store.getStream(build.stream)
    const { cosaBuildId: id, arch } = posted.result
    const meta = JSON.parse(posted.metaJson) as Meta
    const lacking = stream ? missingImages(meta.images, requiredImages(recipeOf(stream), platformsOf(build, stream))) : []
    if (lacking.length) {
      return failed('invalid_result', `build ${id} is incomplete: meta.json has no ${lacking.join(', ')} image ` +
        `(the build asked for ${platformsOf(build, stream!).join(', ')}); nothing was published`, exitCode)
    }
    await logs.note(build.id, `publishing build ${id} (${arch}) to the artifact store`)
    try {
      const out = await this.#deps.publisher.publish({
        stream: build.stream,
        buildId: build.id,
        workdir: dataDir.workdir(build.stream),
        arch,
        meta,
        metaJson: posted.metaJson,
        keep: stream?.keep ?? DEFAULT_KEEP,
        pinned: await store.pinnedBuilds(build.stream)
      })
      await logs.note(build.id, out.stored
        ? `published ${out.artifacts.length} artifacts of ${id}` + (out.pruned.length ? `; retention pruned ${out.pruned.join(', ')}` : '')
        : `build ${id} was already in the store`)
      const state = posted.outcome === 'built' || out.stored ? 'succeeded' : 'unchanged'
      return { state, exitCode, result: { ...posted.result, artifacts: out.artifacts, files: out.files } }
    } catch (err) {
      if (!(err instanceof PublishError)) throw err
      return failed('publish_failed', `publishing build ${id} failed: ${err.message}`, exitCode)
    }
  }

  async #finish (build: Build, final: Final) {
    const patch: BuildPatch = { finishedAt: this.#deps.now().toISOString() }
    if (final.reason) patch.reason = final.reason
    if (final.message) patch.message = final.message
    if (final.exitCode !== undefined) patch.exitCode = final.exitCode
    if (final.result) patch.result = final.result
    const done = await this.#deps.store.transition(build.id, ['running'], final.state, patch)
    if (!done) return
    await this.#deps.logs.note(build.id, `build ${final.state}${final.message ? `: ${final.message}` : ''}`)
    this.#deps.logger.info({ buildId: build.id, state: final.state, reason: final.reason }, 'build finished')
  }
}
