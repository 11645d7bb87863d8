import type { BuildsJson } from '../cosa/builds-json.js'

/**
 * The builds beyond the newest `keep` that are neither pinned nor tagged, as
 * cosa prune counts them: pinned and tagged builds (builds.json `tags`,
 * written by `cosa tag`) neither count nor go, so no tag ever points at a
 * pruned build. The newest build is builds/latest and always stays.
 */
export function buildsToPrune (doc: BuildsJson, keep: number, pinned: ReadonlySet<string>): string[] {
  const tagged = taggedBuilds(doc)
  const prune: string[] = []
  let kept = 0
  for (const [i, entry] of doc.builds.entries()) {
    if (pinned.has(entry.id) || tagged.has(entry.id)) continue
    if (i === 0 || kept < keep) kept++
    else prune.push(entry.id)
  }
  return prune
}

/** The build ids builds.json's tags point at; a malformed tags list protects nothing and breaks nothing. */
function taggedBuilds (doc: BuildsJson): Set<string> {
  const tags = Array.isArray(doc.tags) ? doc.tags as unknown[] : []
  return new Set(tags.flatMap((t) => typeof (t as { target?: unknown })?.target === 'string' ? [(t as { target: string }).target] : []))
}
