// Where a queued build runs: a pure decision over the engines as last
// probed. A stream's workdir and cosa cache live on its home engine for an
// arch (the engine of its newest build on that arch), so the build goes
// there while it answers, is not draining and has room. A home that is down
// or draining is left at once; a home that is only full is waited for,
// `homeWaitMs` from the build's submission, before another engine of the
// arch takes it and syncs a fresh workdir from the artifact store. Among the
// others, the least loaded (by share of capacity), then by name. A build
// retried after an infrastructure failure avoids the engines that failed
// it while another can take it (its home among them).

export interface PlacementEngine {
  name: string
  /** Undefined while the engine has never answered (and has no configured arch). */
  arch?: string | undefined
  capacity: number
  running: number
  draining: boolean
  reachable: boolean
}

export interface Candidate {
  /** Undefined when the stream names none and the default engine's arch is not known yet. */
  arch: string | undefined
  home?: string | undefined
  waitedMs: number
  /** Engines an earlier attempt failed on (src/builds/retry-policy.ts): last choice. */
  avoid?: readonly string[] | undefined
}

export type Waiting = 'slot' | 'engine_unavailable' | 'no_engine_for_arch'

export type Decision = { engine: PlacementEngine, home: boolean } | { waiting: Waiting }

const load = (e: PlacementEngine) => e.running / e.capacity

export function place (build: Candidate, engines: PlacementEngine[], homeWaitMs: number): Decision {
  const { arch } = build
  const usable = engines.filter((e) => arch !== undefined && e.arch === arch && !e.draining && e.reachable)
  if (!usable.length) {
    // An engine that is down may be of this arch (or was, when it last answered).
    const down = engines.some((e) => !e.draining && !e.reachable && (e.arch === undefined || e.arch === arch))
    return { waiting: down || arch === undefined ? 'engine_unavailable' : 'no_engine_for_arch' }
  }
  const hasRoom = (e: PlacementEngine) => e.running < e.capacity
  const avoided = (e: PlacementEngine) => build.avoid?.includes(e.name) === true
  const home = usable.find((e) => e.name === build.home && !avoided(e))
  if (home && hasRoom(home)) return { engine: home, home: true }
  if (home && build.waitedMs < homeWaitMs) return { waiting: 'slot' }
  const other = usable.filter(hasRoom)
    .sort((a, b) => Number(avoided(a)) - Number(avoided(b)) || load(a) - load(b) || a.name.localeCompare(b.name))[0]
  return other ? { engine: other, home: other.name === build.home } : { waiting: 'slot' }
}
