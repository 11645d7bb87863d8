// What registering a stream should hear about the engines its arches need:
// a build of an arch no engine serves is accepted, and waits (`waitingFor:
// no_engine_for_arch`) until an engine of that arch is added; the admin who
// registers it learns that now rather than from a build that never starts.
// Pure: EngineService passes the engines as last probed.

export interface CoveringEngine {
  name: string
  /** Undefined while the engine has never answered (and has no configured arch). */
  arch?: string | undefined
  draining: boolean
}

export function archWarnings (arches: readonly string[], engines: readonly CoveringEngine[]): string[] {
  const unknown = engines.filter((e) => e.arch === undefined).map((e) => e.name)
  const maybe = unknown.length ? ` (${unknown.join(', ')} never answered: ${unknown.length === 1 ? 'it' : 'one'} may serve it)` : ''
  return arches.flatMap((arch) => {
    const serving = engines.filter((e) => e.arch === arch)
    if (!serving.length) {
      return [`no engine serves ${arch}${maybe}: the stream's builds wait (waitingFor no_engine_for_arch) until one is added with PUT /v1/engines/{name}`]
    }
    if (serving.every((e) => e.draining)) {
      return [`every engine of ${arch} is draining (${serving.map((e) => e.name).join(', ')}): the stream's builds wait (waitingFor no_engine_for_arch) until one is undrained or added`]
    }
    return []
  })
}
