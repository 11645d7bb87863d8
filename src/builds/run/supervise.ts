import { engineGoesAway, inspectPatiently, watchEngine } from '../../executor/engine-watch.js'
import type { JobState } from '../../executor/executor.js'
import type { LogCopy } from '../log-pump.js'
import type { Ending, Observation } from './outcome.js'
import type { RunContext } from './context.js'

// The third step: follow the job's log and wait for it to end (on its
// own, by the deadline, or by a requested cancel), riding out an engine that
// stops answering, then observe how it ended. What it observed is decided
// by decideOutcome (outcome.ts); undefined means the service is shutting down
// and leaves the build to the next start.

// Once the engine is known to have gone away, what is left of the job's log
// is not waited for: it is at most the last poll's worth (builds.logPollMs),
// and it stays in the engine's log. The build, retried elsewhere, need not
// wait the log pump's usual patience for an engine that is not coming back.
const GONE_ENGINE_LOG_PATIENCE_MS = 2000

export type Observed = Pick<Observation, 'ending' | 'job' | 'engineWasDown' | 'timeoutSeconds'>

/** lost: the engine did not answer for builds.engineLostMs. */
interface Waited { ending: Ending | 'gone' | 'lost', engineWasDown: boolean }

export async function supervise (ctx: RunContext, jobId: string): Promise<Observed | undefined> {
  const { deps: { config, now }, build, stream, shutdown } = ctx
  const started = Date.parse(build.startedAt ?? now().toISOString())
  const timeoutSeconds = stream?.timeoutSeconds ?? config.builds.defaultTimeoutSeconds
  const timeout = AbortSignal.timeout(Math.max(0, started + timeoutSeconds * 1000 - now().getTime()))
  const logAbort = new AbortController()
  const redact = ctx.redactor.active ? (line: string) => ctx.redactor.redact(line) : undefined
  const pump = ctx.pump.start(build.id, ctx.executor, jobId, AbortSignal.any([logAbort.signal, shutdown]), { redact, onStep: ctx.onStep, mayWrite: ctx.mayWrite })
  const stop = async () => { logAbort.abort(); await pump.done }

  const waited = await waitForEnd(ctx, jobId, timeout, timeoutSeconds)
  if (!waited) return void await stop()
  if (waited.ending === 'gone' || waited.ending === 'lost') {
    await stop()
    return { ending: 'exited', job: waited.ending === 'gone' ? 'gone' : 'unknown', engineWasDown: waited.engineWasDown, timeoutSeconds }
  }
  const observed = await observeEnd(ctx, jobId, { ...waited, ending: waited.ending }, pump)
  await stop()
  if (shutdown.aborted) return undefined
  return { ...observed, timeoutSeconds }
}

async function waitForEnd (ctx: RunContext, jobId: string, timeout: AbortSignal, timeoutSeconds: number): Promise<Waited | undefined> {
  const { deps: { logs, config }, executor: engine, build, cancel, shutdown, log } = ctx
  let engineWasDown = false
  for (;;) {
    // A wait on an engine that died can hang with its connection half
    // open: a heartbeat turns that into a broken wait, which is re-inspected.
    const heartbeat = watchEngine(engine, config.docker.heartbeatMs, AbortSignal.any([cancel, timeout, shutdown]))
    try {
      await engine.wait(jobId, AbortSignal.any([cancel, timeout, shutdown, heartbeat.lost]))
      return { ending: 'exited', engineWasDown }
    } catch (err) {
      if (shutdown.aborted) return undefined
      if (cancel.aborted || timeout.aborted) {
        const ending = cancel.aborted ? 'cancelled' : 'timed_out'
        await logs.note(build.id, ending === 'cancelled'
          ? `cancel requested; stopping the container (grace ${config.builds.stopGraceSeconds}s)`
          : `timed out after ${timeoutSeconds}s; stopping the container`)
        await engine.stop(jobId, config.builds.stopGraceSeconds)
        return { ending, engineWasDown }
      }
      // A broken wait says nothing about the job: look again.
      log.warn({ err }, 'waiting for the build container failed; inspecting it')
      const lost = AbortSignal.timeout(config.builds.engineLostMs)
      const { state, unreachable } = await inspectPatiently(engine, jobId, AbortSignal.any([timeout, shutdown, cancel, lost]))
      if (unreachable && !engineWasDown) {
        engineWasDown = true
        await logs.note(build.id, `the Docker engine stopped answering during the build; waiting for it (at most ${config.builds.engineLostMs / 1000}s)`)
      }
      if (state === 'gone') return { ending: 'gone', engineWasDown }
      // The others are seen to at the next turn.
      if (state === 'unknown' && lost.aborted && !cancel.aborted && !timeout.aborted && !shutdown.aborted) return { ending: 'lost', engineWasDown: true }
    } finally {
      heartbeat.stop()
    }
  }
}

async function observeEnd (ctx: RunContext, jobId: string, waited: { ending: Ending, engineWasDown: boolean }, pump: LogCopy) {
  const { deps: { config }, executor: engine, shutdown } = ctx
  const after = await inspectPatiently(engine, jobId, AbortSignal.any([shutdown, AbortSignal.timeout(config.builds.engineLostMs)]))
  // A deletion (`docker rm -f`) kills first and deletes after: a job on its way out is gone.
  const state = typeof after.state === 'object' && !after.state.removing ? after.state : undefined
  // A graceful engine shutdown stops its containers first (SIGTERM, as
  // `docker stop` does) and goes away a moment later: a signal death we
  // did not cause is only a build failure if the engine stays up.
  const wentAway = waited.ending === 'exited' && state !== undefined && !state.oomKilled && state.exitCode > 128 &&
    await engineGoesAway(engine, config.builds.engineProbeMs, shutdown)
  const engineWasDown = waited.engineWasDown || after.unreachable || wentAway
  // The pump reads the engine's log until it has nothing more (it waits
  // out an engine that went away, for a while: not one that is going).
  if (state) await pump.finish(wentAway ? GONE_ENGINE_LOG_PATIENCE_MS : undefined)
  const job: Observed['job'] = after.state === 'unknown'
    ? 'unknown'
    : state ? { exitCode: state.exitCode, oomKilled: state.oomKilled } : 'gone'
  return { ending: waited.ending, job, engineWasDown }
}

/** How a job that ended while no service watched it looks: its exit, or gone. */
export function observeExited (state: JobState | undefined): Observed['job'] {
  return state && !state.removing ? { exitCode: state.exitCode, oomKilled: state.oomKilled } : 'gone'
}
