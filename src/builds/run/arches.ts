import type { Final } from '../lifecycle.js'
import type { ArchRun, Build, BuildRequest, BuildResult, Stream } from '../model.js'

// A build of a stream with several arches runs them one after another, each
// natively on an engine of its arch: the primary (the stream's first arch)
// as any build runs, deciding the cosa build id; then each other arch
// builds that same id (`cosa build --force --version <id>`) in a workdir of
// its own and publishes builds/<id>/<arch>/, which the store's builds.json
// merges into the id's entry. The build's `arches` record says which arch
// has ended how; its `arch` and `engine` say which runs now, so a restarted
// service knows where to look and what is left. These are the rules, free of
// I/O; arch-sequence.ts does the moving.

const ENDED = new Set<ArchRun['state']>(['succeeded', 'unchanged', 'failed', 'cancelled', 'skipped'])

export const isMultiArch = (stream: Stream | undefined) => (stream?.arches?.length ?? 0) > 1

/**
 * The arch a multi-arch build runs now when it is not its primary (the first
 * of its arches), whose workdir is then its own; undefined otherwise.
 */
export function secondaryArch (build: Pick<Build, 'arch' | 'arches'>): string | undefined {
  const primary = build.arches?.[0]?.arch
  return primary !== undefined && build.arch !== undefined && build.arch !== primary ? build.arch : undefined
}

/** The record of a multi-arch build as its primary starts. */
export const startArches = (arches: readonly string[], engine: string | undefined, at: string): ArchRun[] =>
  arches.map((arch, i) => i === 0 ? { arch, state: 'running', engine, startedAt: at } : { arch, state: 'pending' })

/** Whether some arch already ended: a build without its job then goes on with the rest rather than starting over. */
export const someArchEnded = (build: Pick<Build, 'arches'>) => build.arches?.some((r) => ENDED.has(r.state)) ?? false

/** `runs` with `arch` ended as `final`; a secondary's artifacts are downloaded in cosa's layout (names repeat across arches). */
export function archEnded (runs: readonly ArchRun[], arch: string, final: Final, at: string, stream: string): ArchRun[] {
  const primary = runs[0]?.arch === arch
  return runs.map((r) => r.arch !== arch
    ? r
    : {
        ...r,
        state: final.state,
        waitingFor: undefined,
        finishedAt: at,
        reason: final.reason,
        message: final.message,
        exitCode: final.exitCode,
        result: final.result && (primary ? final.result : inLayout(final.result, stream)),
        bootTest: final.bootTest
      })
}

/**
 * The record as the build ends: the arch that ran (`arch`, else the one
 * recorded running), when it had not ended yet (the reconciler ends builds
 * whose job vanished), ended as `final`; the arches that never ran `skipped`.
 */
export function closedArches (runs: readonly ArchRun[], arch: string | undefined, final: Final, at: string, stream: string): ArchRun[] {
  const current = runs.find((r) => arch === undefined ? r.state === 'running' : r.arch === arch)
  const ended = current && !ENDED.has(current.state) && current.state !== 'pending' ? archEnded(runs, current.arch, final, at, stream) : runs
  return ended.map((r) => r.state === 'pending' || r.state === 'waiting' ? { ...r, state: 'skipped' as const, waitingFor: undefined } : r)
}

/** A secondary arch's artifacts, downloaded in cosa's layout (the build's artifact route serves the primary's). */
export function inLayout (result: BuildResult, stream: string): BuildResult {
  return { ...result, artifacts: result.artifacts.map((a) => ({ ...a, url: `/v1/streams/${stream}/${a.path}` })) }
}

/** `runs` with `arch` in `state` (waiting, running, skipped), and what goes with it. */
export const archIs = (runs: readonly ArchRun[], arch: string, patch: Partial<ArchRun>): ArchRun[] =>
  runs.map((r) => r.arch === arch ? { ...r, ...patch } : r)

export type Step = { arch: string } | { final: Final }

/**
 * What comes after an arch ended: the next arch to run, or how the build
 * ends. An arch that did not succeed ends it, named in its message, and
 * the arches after it are not run (those that published stay published,
 * under the same id). Every arch ended well: `unchanged` when none made a
 * new build, `succeeded` otherwise, with the primary's result and every
 * arch's files.
 */
export function nextStep (runs: readonly ArchRun[]): Step {
  const bad = runs.find((r) => r.state === 'failed' || r.state === 'cancelled')
  if (bad) {
    const others = runs.filter((r) => r.arch !== bad.arch && ENDED.has(r.state)).map((r) => `${r.arch} ${r.state}`)
    return {
      final: {
        state: bad.state as 'failed' | 'cancelled',
        reason: bad.reason,
        message: `${bad.arch}: ${bad.message ?? bad.state}` + (others.length ? ` (${others.join(', ')})` : ''),
        exitCode: bad.exitCode,
        result: combined(runs),
        bootTest: runs[0]?.bootTest
      }
    }
  }
  const next = runs.find((r) => !ENDED.has(r.state))
  if (next) return { arch: next.arch }
  const primary = runs[0]!
  return {
    final: {
      state: runs.every((r) => r.state === 'unchanged' || r.state === 'skipped') ? 'unchanged' : 'succeeded',
      exitCode: primary.exitCode,
      result: combined(runs),
      bootTest: primary.bootTest,
      message: runs.map((r) => r.message && `${r.arch}: ${r.message}`).filter(Boolean).join('; ') || undefined
    }
  }
}

/** The primary's result, with the files every arch published. */
function combined (runs: readonly ArchRun[]): BuildResult | undefined {
  const result = runs[0]?.result
  if (!result) return undefined
  const files = runs.flatMap((r) => r.result?.files ?? [])
  return { ...result, files: files.length ? files : undefined }
}

/** What a secondary arch builds: the primary's id, anew in its own workdir. */
export const archRequest = (request: BuildRequest, primaryId: string): BuildRequest =>
  ({ ...request, force: true, version: primaryId })
