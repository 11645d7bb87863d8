import type { Build } from '../model.js'

/**
 * The arch a multi-arch build runs now when it is not its primary (the first
 * of its arches), whose workdir is then its own; undefined otherwise.
 */
export function secondaryArch (build: Pick<Build, 'arch' | 'arches'>): string | undefined {
  const primary = build.arches?.[0]?.arch
  return primary !== undefined && build.arch !== undefined && build.arch !== primary ? build.arch : undefined
}
