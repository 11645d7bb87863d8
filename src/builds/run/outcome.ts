import type { BootTestStatus } from '../../cosa/kola-report.js'
import { missingImages } from '../../cosa/recipe.js'
import { failed, type Final } from '../lifecycle.js'

// How a build ended, decided from what was observed and nothing else: no
// I/O, so every case is a row in test/builds/outcome.test.ts.

/** Why the build's job stopped: on its own, or stopped by the service. */
export type Ending = 'exited' | 'cancelled' | 'timed_out'

export interface Observation {
  ending: Ending
  timeoutSeconds: number
  /** The job once it ended: deleted (gone), an engine that never answered again (unknown), or its exit. */
  job: 'gone' | 'unknown' | { exitCode: number, oomKilled: boolean }
  /** The engine stopped answering, or went away, while the build ran. */
  engineWasDown: boolean
  /** What the build posted and the service accepted. */
  posted?: { cosaBuildId: string, images: Record<string, unknown> } | undefined
  /** Why a posted result was refused, if it was. */
  rejection?: string | undefined
  /** The meta.json images a complete build has (requiredImages in src/cosa/recipe.ts). */
  requiredImages: readonly string[]
  platforms: readonly string[]
  /** A new build of a stream with a boot test: its mode and how the test ended (run/boot-test.ts). */
  bootTest?: { mode: 'gate' | 'warn', status: BootTestStatus, reason: string | null } | undefined
}

/** A final state, or: publish the posted build (then succeeded, unchanged or publish_failed). */
export type Decision = Final | { publish: true, exitCode: number, warning?: string }

export function decideOutcome (o: Observation): Decision {
  if (o.ending === 'cancelled') return { state: 'cancelled' }
  if (o.ending === 'timed_out') return failed('timeout', `the build ran longer than the stream's timeout of ${o.timeoutSeconds}s`)
  if (o.job === 'unknown') return failed('infrastructure', 'the Docker engine went away during the build and did not come back')
  if (o.job === 'gone') return failed('lost', 'the build container disappeared')
  const { exitCode, oomKilled } = o.job
  // An engine that stops kills its jobs (unless live-restore keeps
  // them): a signal death then is the infrastructure's, not the build's.
  if (o.engineWasDown && exitCode > 128 && !oomKilled) {
    return failed('infrastructure', `the Docker engine stopped during the build; the container ended with exit code ${exitCode}`, exitCode)
  }
  if (oomKilled) return failed('oom', 'a process in the build container ran out of memory and was killed', exitCode)
  if (exitCode !== 0) return failed('exit_code', `the build exited with code ${exitCode}; the log has the details`, exitCode)
  if (!o.posted) return failed('invalid_result', o.rejection ?? 'the build exited 0 without posting a valid result', exitCode)
  const lacking = missingImages(o.posted.images, o.requiredImages)
  if (lacking.length) {
    return failed('invalid_result', `build ${o.posted.cosaBuildId} is incomplete: meta.json has no ${lacking.join(', ')} image ` +
      `(the build asked for ${o.platforms.join(', ')}); nothing was published`, exitCode)
  }
  return bootTestVerdict(o, exitCode)
}

/** A failed boot test stops a gated build; warn mode, and kola's warn-only failures (77), publish with a warning. */
function bootTestVerdict (o: Observation, exitCode: number): Decision {
  const test = o.bootTest
  if (!test || test.status === 'passed' || test.status === 'skipped') return { publish: true, exitCode }
  const what = `the boot test ${test.status === 'warned' ? 'warned' : 'failed'}${test.reason ? ` (${test.reason})` : ''}`
  if (test.status === 'failed' && test.mode === 'gate') {
    return failed('boot_test', `${what}; nothing was published (the build's bootTest, console and journal have the details)`, exitCode)
  }
  return { publish: true, exitCode, warning: `published although ${what}` }
}
