import { requiredImages, stepPhase } from '../cosa/recipe.js'
import { childLogger } from '../logger.js'
import { EngineError } from '../runner/docker-engine.js'
import type { BuildEvent } from './build-event.js'
import { PUBLISHING, type Final } from './lifecycle.js'
import { LogPump } from './log-pump.js'
import { SecretRedactor } from './log-sanitizer.js'
import type { Build, Stream } from './model.js'
import { failed, isFinal, platformsOf, recipeOf, type RunContext, type RunnerDeps } from './run/context.js'
import { execute } from './run/execute.js'
import { readBootTest } from './run/boot-test.js'
import { decideOutcome } from './run/outcome.js'
import { prepare, type UserIds } from './run/prepare.js'
import { publish } from './run/publish.js'
import { observeExited, supervise, type Observed } from './run/supervise.js'

export type { RunnerDeps } from './run/context.js'

// Runs one build from claim to final state, as a pipeline of steps with one
// job each: prepare (run/prepare.ts) → execute (run/execute.ts) → supervise
// (run/supervise.ts) → decide (run/outcome.ts, pure) → publish
// (run/publish.ts) → finish (the lifecycle). This class only tracks which
// builds this process supervises. Cancel reaches it as an event
// (`build.cancel_requested`), never as a call. Shutdown detaches without
// touching the container; the next start adopts it.

export class BuildRunner {
  readonly #deps: RunnerDeps
  readonly #active = new Map<string, AbortController>()
  readonly #settled = new Set<Promise<void>>()
  readonly #shutdown = new AbortController()
  // Image user name -> ids, resolved once per image (and user) per process.
  readonly #userIds: UserIds = new Map()
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
    deps.lifecycle.subscribe((event: BuildEvent) => {
      if (event.type === 'build.cancel_requested') this.#active.get(event.buildId)?.abort()
    })
  }

  isActive (buildId: string) {
    return this.#active.has(buildId)
  }

  get activeCount () {
    return this.#active.size
  }

  /** Stops supervising without touching containers, for a graceful shutdown. */
  async detachAll () {
    this.#shutdown.abort()
    await Promise.allSettled([...this.#settled])
  }

  /** Runs a build the scheduler just claimed (state `running`). */
  run (build: Build) {
    return this.#track(build, async (ctx) => {
      if (!ctx.stream) return this.#finish(ctx, failed('config_unavailable', `stream ${build.stream} no longer exists`))
      try {
        await this.#launch(ctx, ctx.stream)
      } catch (err) {
        if (!(err instanceof EngineError)) throw err
        await this.#finish(ctx, failed('infrastructure', err.message))
      }
    })
  }

  /** Resumes supervising a build whose container outlived a service restart. */
  adopt (build: Build, containerId: string) {
    return this.#track(build, async (ctx) => {
      await this.#deps.logs.note(build.id, 'service restarted; following the build container again')
      await this.#superviseAndEnd(ctx, containerId)
    })
  }

  /** Decides a build whose container exited while no service supervised it. */
  finishExited (build: Build, containerId: string) {
    return this.#track(build, async (ctx) => {
      const container = observeExited(await this.#deps.engine.inspect(containerId))
      // What the container printed while no service read its log.
      if (container !== 'gone') await this.#logPump.start(build.id, containerId, ctx.shutdown, this.#copyOptions(ctx)).finish()
      await this.#end(ctx, containerId, { ending: 'exited', container, engineWasDown: false, timeoutSeconds: 0 })
    }, false)
  }

  async #launch (ctx: RunContext, stream: Stream) {
    const prepared = await prepare(ctx, stream, this.#userIds)
    if (isFinal(prepared)) return this.#finish(ctx, prepared)
    if (await this.#cancelRequested(ctx)) return this.#finish(ctx, { state: 'cancelled' })
    const started = await execute(ctx, stream, prepared)
    if (started === undefined) return
    if (typeof started !== 'string') return this.#finish(ctx, started)
    await this.#superviseAndEnd(ctx, started)
  }

  async #superviseAndEnd (ctx: RunContext, containerId: string) {
    if (await this.#cancelRequested(ctx)) this.#active.get(ctx.build.id)?.abort()
    const observed = await supervise(ctx, containerId)
    if (observed) await this.#end(ctx, containerId, observed)
  }

  /** Decide, publish if so decided, remove the container, write the final state. */
  async #end (ctx: RunContext, containerId: string, observed: Observed) {
    const final = await this.#decide(ctx, observed)
    // Before the final state: a finished build has no container. A failed
    // removal does not hold the build back; the reconciler retries it.
    await this.#deps.engine.remove(containerId)
      .catch((err) => ctx.log.warn({ err }, 'removing the build container failed; the reconciler will retry'))
    await this.#finish(ctx, final)
  }

  async #decide (ctx: RunContext, observed: Observed): Promise<Final> {
    const { deps: { store, lifecycle, logs }, build, stream } = ctx
    const posted = await store.postedResult(build.id)
    const bootTest = observed.container !== 'gone' && observed.container !== 'unknown' && observed.container.exitCode === 0
      ? await readBootTest(ctx, posted)
      : undefined
    const decision = decideOutcome({
      ...observed,
      posted: posted && { cosaBuildId: posted.result.cosaBuildId, images: JSON.parse(posted.metaJson).images ?? {} },
      // The result intake says why it refused a posted result.
      rejection: posted ? undefined : (await store.getBuild(build.id))?.message,
      requiredImages: stream ? requiredImages(recipeOf(stream), platformsOf(build, stream)) : [],
      platforms: stream ? platformsOf(build, stream) : [],
      bootTest: bootTest && { mode: bootTest.mode, status: bootTest.record.status, reason: bootTest.record.reason }
    })
    if (isFinal(decision)) return { ...decision, bootTest: bootTest?.record }
    if (decision.warning) await logs.note(build.id, decision.warning)
    await ctx.phasesWritten()
    await lifecycle.phase(build.id, PUBLISHING)
    const final = await publish(ctx, posted!, decision.exitCode)
    return { ...final, bootTest: bootTest?.record, message: final.message ?? decision.warning }
  }

  async #finish (ctx: RunContext, final: Final) {
    await ctx.phasesWritten()
    const done = await this.#deps.lifecycle.finish(ctx.build, final)
    if (done) await this.#deps.logs.note(ctx.build.id, `build ${final.state}${final.message ? `: ${final.message}` : ''}`)
  }

  async #cancelRequested (ctx: RunContext) {
    return ctx.cancel.aborted || (await this.#deps.store.getBuild(ctx.build.id))?.cancelRequestedAt !== undefined
  }

  #copyOptions (ctx: RunContext) {
    return { redact: ctx.redactor.active ? (line: string) => ctx.redactor.redact(line) : undefined, onStep: ctx.onStep }
  }

  async #context (build: Build, cancel: AbortController): Promise<RunContext> {
    const { store, lifecycle, logger } = this.#deps
    const stream = await store.getStream(build.stream)
    const log = childLogger(logger, { buildId: build.id, stream: build.stream })
    let phases = Promise.resolve()
    return {
      deps: this.#deps,
      build,
      stream,
      log,
      cancel: cancel.signal,
      shutdown: this.#shutdown.signal,
      pump: this.#logPump,
      redactor: new SecretRedactor(Object.values(stream?.secrets ?? {})),
      // Phases are written in the order the log shows them, each after the last.
      onStep: (line) => {
        const phase = stepPhase(line)
        if (phase === undefined) return
        phases = phases.then(() => lifecycle.phase(build.id, phase))
          .then(() => undefined, (err) => log.warn({ err, phase }, 'recording the build phase failed'))
      },
      phasesWritten: () => phases
    }
  }

  /**
   * One supervisor per build in this process. `failOnError`: a build never
   * stays running because the service tripped; a shutdown, though, leaves it
   * to the next start, as does a failed decision of an exited build (the
   * reconciler tries it again).
   */
  #track (build: Build, fn: (ctx: RunContext) => Promise<void>, failOnError = true) {
    const buildId = build.id
    if (this.#active.has(buildId)) return Promise.resolve()
    const cancel = new AbortController()
    this.#active.set(buildId, cancel)
    let ctx: RunContext | undefined
    const done = this.#context(build, cancel)
      .then((c) => fn(ctx = c))
      .catch(async (err) => {
        this.#deps.logger.error({ err, buildId }, 'build supervision failed')
        if (this.#shutdown.signal.aborted || !failOnError || !ctx) return
        await this.#finish(ctx, failed('infrastructure', `the service failed to run the build: ${(err as Error).message}`))
          .catch(() => undefined)
      })
      .finally(() => {
        this.#active.delete(buildId)
        this.#settled.delete(done)
      })
    this.#settled.add(done)
    return done
  }
}
