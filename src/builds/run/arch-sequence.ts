import { buildKey } from '../../artifacts/store-layout.js'
import type { Executor } from '../../executor/executor.js'
import { failed, type Final } from '../lifecycle.js'
import type { ArchRun, Build, BuildResult } from '../model.js'
import { moveToArch } from './arch-placement.js'
import { archEnded, archIs, archRequest, closedArches, inLayout, nextStep } from './arches.js'
import { isFinal, type RunContext } from './context.js'

// What the runner does when an arch of a multi-arch build has ended: the
// rules (arches.ts) say whether another arch runs or how the build ends; this
// records each arch's end, skips an arch the build has already, moves the
// build to the next arch's engine (arch-placement.ts) and hands it to the
// runner to launch there.

/** Runs the build's next arch, already moved to `executor`'s engine, to its end. */
export type Launch = (build: Build, executor: Executor) => Promise<void>

/**
 * An arch ended: the build's end, or undefined once the next arch runs (it
 * ends the build in its turn) or the build is no longer this process's. A
 * build of one arch simply ends.
 */
export async function afterArch (ctx: RunContext, final: Final, launch: Launch): Promise<Final | undefined> {
  const { deps: { store, logs, lifecycle, now } } = ctx
  const build = await store.builds.getBuild(ctx.build.id)
  if (!build?.arches || build.state !== 'running' || !build.arch) return final
  await logs.note(build.id, `${build.arch}: ${final.state}${final.message ? `: ${final.message}` : ''}`)
  const runs = archEnded(build.arches, build.arch, final, now().toISOString(), build.stream)
  // Its job is gone: a restart from here goes on with the next arch (the reconciler's resume).
  if (!await lifecycle.record(build.id, { arches: runs, containerId: null })) return undefined
  return goOn(ctx, runs, launch)
}

/** From `runs` as recorded: the next arch run (undefined), or the build's end. */
export async function goOn (ctx: RunContext, from: readonly ArchRun[], launch: Launch): Promise<Final | undefined> {
  const { deps: { logs, now }, build } = ctx
  let runs = [...from]
  for (;;) {
    const step = nextStep(runs)
    if ('final' in step) return buildEnd(ctx, runs, step.final)
    const id = runs[0]?.result?.cosaBuildId
    if (!id) return buildEnd(ctx, runs, failed('infrastructure', `${step.arch}: the primary arch left no build id to build`))
    // Nothing changed, and the build has this arch: nothing to build.
    const stored = runs[0]!.state === 'unchanged' ? await storedArch(ctx, id, step.arch) : undefined
    if (stored) {
      runs = archIs(runs, step.arch, { state: 'unchanged', result: stored, message: `build ${id} has ${step.arch} already`, finishedAt: now().toISOString() })
      continue
    }
    const moved = await moveToArch(ctx, runs, step.arch)
    if (moved === undefined) return undefined
    if (isFinal(moved)) {
      runs = archEnded(runs, step.arch, moved, now().toISOString(), build.stream)
      continue
    }
    await logs.note(build.id, `${step.arch}: building ${id} (cosa build --force --version ${id})`)
    await launch({ ...moved.build, request: archRequest(moved.build.request, id) }, moved.executor)
    return undefined
  }
}

/** The build's end with every arch's record; its meta.json is the primary's again (a secondary's run replaced it). */
async function buildEnd (ctx: RunContext, runs: ArchRun[], final: Final): Promise<Final> {
  const { deps: { store, publisher }, build } = ctx
  const primary = runs[0]
  if (primary?.result && runs.slice(1).some((r) => r.engine !== undefined)) {
    const { cosaBuildId, arch } = primary.result
    const meta = await publisher.store.getBytes(buildKey(build.stream, cosaBuildId, arch, 'meta.json'))
    const outcome = primary.state === 'succeeded' ? 'built' : 'unchanged'
    if (meta) await store.builds.recordResult(build.id, { outcome, result: primary.result, metaJson: meta.toString('utf8') })
  }
  return { ...final, arches: closedArches(runs, undefined, final, ctx.deps.now().toISOString(), build.stream) }
}

/** What the store has of build `id` for `arch`, when its builds.json lists that arch. */
async function storedArch (ctx: RunContext, id: string, arch: string): Promise<BuildResult | undefined> {
  const { deps: { publisher }, build } = ctx
  const meta = await publisher.storedMeta(build.stream, id, arch)
  if (!meta) return undefined
  const artifacts = publisher.artifacts({ stream: build.stream, buildId: build.id, arch, meta })
  return inLayout({ cosaBuildId: id, arch, ostreeCommit: meta['ostree-commit'], artifacts }, build.stream)
}
