import { requiredImages, stepPhase } from '../cosa/recipe.js'
import { isDatabaseUnavailable } from '../errors.js'
import { whileDatabaseAway } from '../store/database-retry.js'
import { childLogger } from '../logger.js'
import { EngineError, type Executor } from '../executor/executor.js'
import type { BuildEvent } from './build-event.js'
import { PUBLISHING, type Final } from './lifecycle.js'
import { LogPump } from './log-pump.js'
import { SecretRedactor } from './log-sanitizer.js'
import type { Build, Stream } from './model.js'
import { afterArch, goOn, type Launch } from './run/arch-sequence.js'
import { isMultiArch, startArches } from './run/arches.js'
import { failed, isFinal, platformsOf, recipeOf, type RunContext, type RunnerDeps } from './run/context.js'
import { collect } from './run/collect.js'
import { execute } from './run/execute.js'
import { readBootTest } from './run/boot-test.js'
import { decideOutcome } from './run/outcome.js'
import { prepare } from './run/prepare.js'
import { publish } from './run/publish.js'
import { noteRequeued } from './run/requeued.js'
import { observeExited, supervise, type Observed } from './run/supervise.js'

export type { RunnerDeps } from './run/context.js'

// Runs one build from claim to final state, as a pipeline of steps with one
// job each: prepare (run/prepare.ts) → execute (run/execute.ts) → supervise
// (run/supervise.ts) → collect (run/collect.ts: what a job on an engine with
// its own workdir left) → decide (run/outcome.ts, pure) → publish
// (run/publish.ts) → finish (the lifecycle). This class only tracks which
// builds this process supervises, and on which engine: a new build on the
// one the scheduler placed it on, an adopted build on the one it recorded. Cancel
// reaches it as an event (`build.cancel_requested`), never as a call.
// Shutdown detaches without touching the job; the next start adopts it.
// A build of several arches runs that pipeline once per arch, each on an
// engine of its arch, the primary first (run/arch-sequence.ts).

export class BuildRunner {
  readonly #deps: RunnerDeps
  readonly #active = new Map<string, AbortController>()
  readonly #settled = new Set<Promise<void>>()
  readonly #shutdown = new AbortController()
  readonly #logPump: LogPump

  constructor (deps: RunnerDeps) {
    this.#deps = deps
    this.#logPump = new LogPump({
      logs: deps.logs,
      logger: deps.logger,
      pollMs: deps.config.builds.logPollMs,
      stallMs: deps.config.docker.callTimeoutMs
    })
    deps.lifecycle.subscribe((event: BuildEvent) => {
      if (event.type === 'build.cancel_requested') this.cancel(event.buildId)
    })
  }

  /** Stops a build's job: a cancel was requested (here, or through another replica). */
  cancel (buildId: string) {
    this.#active.get(buildId)?.abort()
  }

  isActive (buildId: string) {
    return this.#active.has(buildId)
  }

  get activeCount () {
    return this.#active.size
  }

  /** Stops supervising without touching jobs, for a graceful shutdown. */
  async detachAll () {
    this.#shutdown.abort()
    await Promise.allSettled([...this.#settled])
  }

  /** Runs a build the scheduler just claimed (state `running`) on the engine it placed it on. */
  run (build: Build, executor: Executor) {
    return this.#track(build, executor, async (ctx) => {
      if (!ctx.stream) return this.#finish(ctx, failed('config_unavailable', `stream ${build.stream} no longer exists`))
      if (isMultiArch(ctx.stream)) {
        const arches = startArches(ctx.stream.arches!, executor.name, build.startedAt ?? this.#deps.now().toISOString())
        const started = await this.#deps.lifecycle.record(build.id, { arches })
        if (!started) return
        ctx.build = started
      }
      await this.#launchGuarded(ctx, ctx.stream)
    })
  }

  /** Goes on with a multi-arch build whose service stopped between two arches (its engine has no job of it). */
  resume (build: Build, executor: Executor) {
    return this.#track(build, executor, async (ctx) => {
      await this.#deps.logs.note(build.id, 'service restarted; going on with the arches not built yet')
      const final = await goOn(ctx, build.arches ?? [], this.#launchArch)
      if (final) await this.#finishBuild(ctx, final)
    })
  }

  async #launchGuarded (ctx: RunContext, stream: Stream) {
    try {
      await this.#launch(ctx, stream)
    } catch (err) {
      if (!(err instanceof EngineError)) throw err
      await this.#finish(ctx, failed('infrastructure', err.message))
    }
  }

  /** Resumes supervising a build whose job, on `executor`, outlived a service restart. */
  adopt (build: Build, executor: Executor, jobId: string) {
    return this.#track(build, executor, async (ctx) => {
      await this.#deps.logs.note(build.id, 'service restarted; following the build container again')
      await this.#superviseAndEnd(ctx, jobId)
    })
  }

  /** Decides a build whose job, on `executor`, exited while no service supervised it. */
  finishExited (build: Build, executor: Executor, jobId: string) {
    return this.#track(build, executor, async (ctx) => {
      const job = observeExited(await executor.inspect(jobId))
      // What the job printed while no service read its log.
      if (job !== 'gone') await this.#logPump.start(build.id, executor, jobId, ctx.shutdown, this.#copyOptions(ctx)).finish()
      await this.#end(ctx, jobId, { ending: 'exited', job, engineWasDown: false, timeoutSeconds: 0 })
    }, false)
  }

  async #launch (ctx: RunContext, stream: Stream) {
    const prepared = await prepare(ctx, stream)
    if (isFinal(prepared)) return this.#finish(ctx, prepared)
    if (await this.#cancelRequested(ctx)) return this.#finish(ctx, { state: 'cancelled' })
    const started = await execute(ctx, stream, prepared)
    if (started === undefined) return
    if (typeof started !== 'string') return this.#finish(ctx, started)
    await this.#superviseAndEnd(ctx, started)
  }

  async #superviseAndEnd (ctx: RunContext, jobId: string) {
    if (await this.#cancelRequested(ctx)) this.#active.get(ctx.build.id)?.abort()
    const observed = await supervise(ctx, jobId)
    if (observed) await this.#end(ctx, jobId, observed)
  }

  /** Collect, decide, publish if so decided, remove the job, write the final state. */
  async #end (ctx: RunContext, jobId: string, observed: Observed) {
    if (observed.ending === 'exited' && typeof observed.job === 'object' && observed.job.exitCode === 0) await collect(ctx, jobId)
    // An upload collect did not take (the job failed after it) is of no use now.
    this.#deps.uploads.forget(ctx.build.id)
    const final = await this.#decide(ctx, observed)
    // The lease was lost: the job is the new supervisor's now, and so is the end.
    if (!final || this.#deps.lifecycle.leases.isLost(ctx.build.id)) return
    // Before the final state: a finished build has no job. A failed
    // removal does not hold the build back; the reconciler retries it.
    await ctx.executor.remove(jobId)
      .catch((err) => ctx.log.warn({ err }, 'removing the build job failed; the reconciler will retry'))
    // Without its job, a build left to be adopted would be `lost`: the final
    // state waits out a database that does not answer, while the lease lasts.
    await whileDatabaseAway(() => this.#finish(ctx, final), ctx.mayWrite)
  }

  /** How the build ends; undefined when it is no longer this process's to end (its lease was lost). */
  async #decide (ctx: RunContext, observed: Observed): Promise<Final | undefined> {
    const { deps: { store, lifecycle, logs }, build, stream } = ctx
    const posted = await store.builds.postedResult(build.id)
    const bootTest = observed.job !== 'gone' && observed.job !== 'unknown' && observed.job.exitCode === 0
      ? await readBootTest(ctx, posted)
      : undefined
    const decision = decideOutcome({
      ...observed,
      posted: posted && { cosaBuildId: posted.result.cosaBuildId, images: JSON.parse(posted.metaJson).images ?? {} },
      // The result intake says why it refused a posted result.
      rejection: posted ? undefined : (await store.builds.getBuild(build.id))?.message,
      requiredImages: stream ? requiredImages(recipeOf(stream), platformsOf(build, stream)) : [],
      platforms: stream ? platformsOf(build, stream) : [],
      bootTest: bootTest && { mode: bootTest.mode, status: bootTest.record.status, reason: bootTest.record.reason }
    })
    if (isFinal(decision)) return { ...decision, bootTest: bootTest?.record }
    if (decision.warning) await logs.note(build.id, decision.warning)
    await ctx.phasesWritten()
    // Fenced, like every write of the supervisor: a replica that lost the
    // build publishes nothing (the one that took it over publishes).
    if (!await lifecycle.phase(build.id, PUBLISHING)) return undefined
    const final = await publish(ctx, posted!, decision.exitCode)
    return { ...final, bootTest: bootTest?.record, message: final.message ?? decision.warning }
  }

  async #finish (ctx: RunContext, final: Final) {
    await ctx.phasesWritten()
    const end = await afterArch(ctx, final, this.#launchArch)
    if (end) await this.#finishBuild(ctx, end)
  }

  /** Launches a multi-arch build's next arch, on the engine it moved to, under the same supervision. */
  readonly #launchArch: Launch = async (build, executor) => {
    const next = await this.#context(build, executor, this.#active.get(build.id)!)
    if (!next.stream) return this.#finish(next, failed('config_unavailable', `stream ${build.stream} no longer exists`))
    await this.#launchGuarded(next, next.stream)
  }

  async #finishBuild (ctx: RunContext, final: Final) {
    const done = await this.#deps.lifecycle.finish(ctx.build, final)
    if (done?.state === 'queued') await noteRequeued(this.#deps.logs, done, final)
    else if (done) await this.#deps.logs.note(ctx.build.id, `build ${final.state}${final.message ? `: ${final.message}` : ''}`)
  }

  async #cancelRequested (ctx: RunContext) {
    return ctx.cancel.aborted || (await this.#deps.store.builds.getBuild(ctx.build.id))?.cancelRequestedAt !== undefined
  }

  #copyOptions (ctx: RunContext) {
    return { redact: ctx.redactor.active ? (line: string) => ctx.redactor.redact(line) : undefined, onStep: ctx.onStep, mayWrite: ctx.mayWrite }
  }

  async #context (build: Build, executor: Executor, cancel: AbortController): Promise<RunContext> {
    const { store, lifecycle, logger } = this.#deps
    const stream = await store.streams.getStream(build.stream)
    const log = childLogger(logger, { buildId: build.id, stream: build.stream })
    let phases = Promise.resolve()
    return {
      deps: this.#deps,
      build,
      executor,
      stream,
      log,
      cancel: cancel.signal,
      // A lost lease detaches the run as a shutdown does: nothing more is written, the job is left alone.
      shutdown: AbortSignal.any([this.#shutdown.signal, lifecycle.leases.lostSignal(build.id)]),
      pump: this.#logPump,
      redactor: new SecretRedactor(Object.values(stream?.secrets ?? {})),
      mayWrite: () => lifecycle.leases.mayWrite(build.id),
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
  #track (build: Build, executor: Executor, fn: (ctx: RunContext) => Promise<void>, failOnError = true) {
    const buildId = build.id
    if (this.#active.has(buildId)) return Promise.resolve()
    const cancel = new AbortController()
    this.#active.set(buildId, cancel)
    let ctx: RunContext | undefined
    const done = this.#context(build, executor, cancel)
      .then((c) => fn(ctx = c))
      .catch(async (err) => {
        // The database did not answer (restarting): the build is not the
        // worse for it. Its lease lapses (or is let go below) and the sweep
        // adopts it, here or on another replica, once the database is back.
        if (isDatabaseUnavailable(err)) {
          this.#deps.logger.warn({ err, buildId }, 'the database did not answer during the build; leaving it to be adopted')
          return
        }
        this.#deps.logger.error({ err, buildId }, 'build supervision failed')
        if (!failOnError || !ctx || ctx.shutdown.aborted) return
        await this.#finish(ctx, failed('infrastructure', `the service failed to run the build: ${(err as Error).message}`))
          .catch(() => undefined)
      })
      // A lease still held here expires at once: another replica (or this
      // one's next reconcile) adopts the build without waiting.
      .finally(() => this.#deps.lifecycle.leases.letGo(buildId)
        .catch((err) => this.#deps.logger.warn({ err, buildId }, 'releasing the build\'s lease failed; it expires on its own'))
        .finally(() => {
          this.#active.delete(buildId)
          this.#settled.delete(done)
        }))
    this.#settled.add(done)
    return done
  }
}
