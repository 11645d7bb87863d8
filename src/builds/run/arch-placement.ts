import { setTimeout as sleep } from 'node:timers/promises'
import type { Executor } from '../../executor/executor.js'
import type { Final } from '../lifecycle.js'
import type { ArchRun, Build } from '../model.js'
import { archIs } from './arches.js'
import type { ArchPlacement, RunContext } from './context.js'

// A multi-arch build's next arch goes to an engine of that arch as a queued
// build would (the scheduler's placement: home engine first, capacity,
// draining), and waits, as a queued build does, while there is none. The
// move is the lifecycle's fenced write, which checks the engine's capacity
// again; an engine filled meanwhile is simply placed again.

/** How often a waiting arch asks again. */
const ARCH_WAIT_MS = 1000

/** The build moved to its next arch's engine; a final state (cancelled); undefined: no longer this process's to run. */
export async function moveToArch (ctx: RunContext, runs: ArchRun[], arch: string): Promise<Moved | Final | undefined> {
  const { deps: { lifecycle, logs, now, store }, build } = ctx
  const since = now().getTime()
  let waiting: string | undefined
  for (;;) {
    if (ctx.cancel.aborted || (await store.builds.getBuild(build.id))?.cancelRequestedAt) return { state: 'cancelled' }
    if (ctx.shutdown.aborted) return undefined
    const placement = await place(ctx, arch, now().getTime() - since)
    const moved = 'waiting' in placement ? 'full' : await move(ctx, runs, arch, placement)
    if (moved !== 'full') return moved
    // Filled since it was placed: as good as no room.
    const why = 'waiting' in placement ? placement.waiting : 'slot'
    if (why !== waiting) {
      waiting = why
      await logs.note(build.id, `${arch}: waiting for an engine (${why})`)
      if (!await lifecycle.record(build.id, { arches: archIs(runs, arch, { state: 'waiting', waitingFor: why }) })) return undefined
    }
    await sleep(ARCH_WAIT_MS, undefined, { signal: AbortSignal.any([ctx.cancel, ctx.shutdown]) }).catch(() => undefined)
  }
}

interface Moved { build: Build, executor: Executor }

async function move (ctx: RunContext, runs: ArchRun[], arch: string, { placed, executor }: Extract<ArchPlacement, { placed: unknown }>) {
  const { deps: { lifecycle, logs, now }, build } = ctx
  const next = archIs(runs, arch, { state: 'running', waitingFor: undefined, engine: placed.engine, startedAt: now().toISOString() })
  const moved = await lifecycle.moveArch(build.id, placed, next)
  if (moved === 'full' || moved === undefined) return moved
  await logs.note(build.id, `${arch}: on the engine ${placed.engine}`)
  return { build: moved, executor }
}

async function place (ctx: RunContext, arch: string, waitedMs: number): Promise<ArchPlacement> {
  const { deps: { placeArch, engines }, build } = ctx
  if (placeArch) return placeArch(build, arch, waitedMs)
  for (const executor of engines.all()) {
    if (await executor.arch() === arch) return { placed: { engine: executor.name, arch, capacity: Number.MAX_SAFE_INTEGER }, executor }
  }
  return { waiting: 'no_engine_for_arch' }
}
