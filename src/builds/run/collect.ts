import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { COSA_BUILD_ID_PATTERN } from '../../cosa/meta.js'
import { JOB_REPORT } from '../../executor/executor.js'
import { uploadPaths } from '../workdir-upload.js'
import { secondaryArch } from './arches.js'
import { workdirOf, type RunContext } from './context.js'

// After a job that ran in the engine's own copy of the workdir (a remote
// engine's volume) exited 0: its report, then its build's files, copied
// back into the service's workdir, and the report taken as the result the
// job would have posted, with the same checks (ResultIntake). A job that
// works in the service's own workdir has posted its result itself, unless
// the post failed (the service restarting meanwhile): then its report is read
// the same way.

/** JOB_REPORT's line: build id, outcome, arch, cosa build id (a plain name: it becomes a path). */
const REPORT = new RegExp(`^(\\S+) (built|unchanged) ([a-z0-9_]{1,32}) (${COSA_BUILD_ID_PATTERN})\\n?$`)

export async function collect (ctx: RunContext, jobId: string): Promise<void> {
  const { deps: { logs, results, lifecycle, store, uploads }, build, executor, shutdown } = ctx
  const pull = (paths: string[]) => executor.pullBuild({ stream: build.stream, arch: secondaryArch(build), jobId, paths, signal: shutdown })
  // A job in the service's own workdir posts its result too; the report is
  // for when the post did not get through (the service was restarting).
  const local = await pull([JOB_REPORT]) === undefined
  if (local && await store.builds.postedResult(build.id) !== undefined) return
  const workdir = workdirOf(ctx)
  const line = await readFile(join(workdir, JOB_REPORT), 'utf8').catch(() => '')
  const report = REPORT.exec(line)
  if (!report || report[1] !== build.id) {
    // No report: the decision says the build exited 0 without a result.
    if (line) await lifecycle.record(build.id, { message: `result rejected: the build's report is not its own or unreadable: ${line.slice(0, 200)}` })
    return
  }
  const [, , outcome, arch, cosaId] = report as unknown as [string, string, 'built' | 'unchanged', string, string]
  // An unchanged build is the store's already: its meta.json is all that is read.
  if (local) {
    await logs.note(build.id, `the build's result did not reach the service; taking it from the workdir's report (${cosaId})`)
  } else {
    // A build the job uploaded itself is in the workdir already (workdir-upload.ts).
    const uploaded = outcome === 'built' ? uploads.take(build.id, cosaId) : undefined
    const files = uploaded ?? await pull(outcome === 'built'
      ? uploadPaths(cosaId)
      : ['builds/builds.json', 'builds/latest', `builds/${cosaId}/${arch}/meta.json`]) ?? []
    const bytes = files.reduce((sum, f) => sum + f.size, 0)
    await logs.note(build.id, uploaded
      ? `received ${files.length} files (${bytes} bytes) of build ${cosaId} from the build itself (upload)`
      : `copied ${files.length} files (${bytes} bytes) of build ${cosaId} from the engine ${executor.name}`)
  }
  const metaJson = await readFile(join(workdir, 'builds', cosaId, arch, 'meta.json'), 'utf8').catch(() => undefined)
  if (metaJson === undefined) {
    await lifecycle.record(build.id, { message: `result rejected: the build reported ${cosaId} (${arch}) but left no meta.json for it` })
    return
  }
  try {
    await results.accept(build.id, outcome, arch, metaJson)
  } catch (err) {
    // A refused result is recorded on the build, and the decision names it.
    if ((err as { code?: string }).code !== 'BLD_RESULT_REJECTED') throw err
  }
}
