import type { BuildsJson } from '../cosa/builds-json.js'

/**
 * The builds beyond the newest `keep` that are not pinned, as cosa prune
 * counts them: pinned builds neither count nor go. The newest build is
 * builds/latest and always stays.
 */
export function buildsToPrune (doc: BuildsJson, keep: number, pinned: ReadonlySet<string>): string[] {
  const prune: string[] = []
  let kept = 0
  for (const [i, entry] of doc.builds.entries()) {
    if (pinned.has(entry.id)) continue
    if (i === 0 || kept < keep) kept++
    else prune.push(entry.id)
  }
  return prune
}
