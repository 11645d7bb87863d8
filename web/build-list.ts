import type { Build } from './types.js'

// Where a build that an event brings belongs in a list shown newest first.

/**
 * `builds` with `build` put in its place: replaced if known, else in order
 * of creation; left out when it is older than every build shown and older
 * pages exist (it is on one of those).
 */
export function merge (builds: Build[], build: Build, morePages: boolean): Build[] {
  const at = builds.findIndex((b) => b.id === build.id)
  if (at >= 0) return builds.map((b, i) => i === at ? build : b)
  const newer = builds.filter((b) => b.createdAt > build.createdAt || (b.createdAt === build.createdAt && b.id > build.id))
  if (newer.length === builds.length && morePages) return builds
  return [...newer, build, ...builds.slice(newer.length)]
}
