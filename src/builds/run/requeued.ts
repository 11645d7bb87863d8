import type { LogStore } from '../../logs/log-store.js'
import type { Final } from '../lifecycle.js'
import type { Build } from '../model.js'

// A build whose attempt failed for infrastructure reasons and was queued
// again (src/builds/retry-policy.ts): its log says so, and forgets where the
// attempt's container log ended. The next attempt's container has a log of
// its own; read against the old marks, its first line would pass for
// output the engine rotated away.

export async function noteRequeued (logs: LogStore, build: Build, final: Final) {
  const attempt = build.attempts?.length ?? 1
  await logs.note(build.id, `attempt ${attempt} failed (${final.reason}${final.message ? `: ${final.message}` : ''}); ` +
    'the build is queued again and runs on another engine of its arch if one can take it')
  const writer = await logs.open(build.id, await logs.resume(build.id))
  try {
    await writer.checkpoint({})
  } finally {
    await writer.close()
  }
}
