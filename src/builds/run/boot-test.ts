import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseKolaReport, type BootTestRecord } from '../../cosa/kola-report.js'
import { bootTestStep, KOLA_DIR, KOLA_REPORT, KOLA_STATUS } from '../../cosa/recipe.js'
import { BOOT_TEST_FILES, type BootTestFile } from '../../logs/log-store.js'
import type { PostedResult } from '../model.js'
import { platformsOf, recipeOf, workdirOf, type RunContext } from './context.js'

// What the boot test left in the workdir once the container ended: kola's
// report.json and the step's exit status (the script writes it), read into
// the build's record; the console and journal are copied beside the build's
// log, where they stay whether or not the build publishes.

export interface BootTestOutcome {
  mode: 'gate' | 'warn'
  record: BootTestRecord
}

const EMPTY = { accel: null, durationMs: 0, milestones: {}, systemState: null, failedUnits: [], bootedCommit: null, findings: [] }
const record = (status: 'failed' | 'skipped', reason: string): BootTestRecord => ({ ...EMPTY, status, reason })

/**
 * Undefined when the build has no boot test: none set, not a new build (an
 * unchanged one is not tested again), or the step did not run in it.
 */
export async function readBootTest (ctx: RunContext, posted: PostedResult | undefined): Promise<BootTestOutcome | undefined> {
  const { build, stream, deps: { logs } } = ctx
  const setting = stream?.bootTest
  if (!stream || !setting?.enabled || posted?.outcome !== 'built') return undefined
  const mode = setting.mode
  if (!bootTestStep(setting, recipeOf(stream), platformsOf(build, stream))) {
    return { mode, record: record('skipped', 'the build makes no qemu image') }
  }
  const workdir = workdirOf(ctx)
  const written = await readFile(join(workdir, KOLA_STATUS), 'utf8').then((s) => /^(\d+) (\S+)\n?$/.exec(s), () => null)
  // None, or another build's: the step did not run in this build (the
  // setting was turned on after it started), so there is nothing to judge.
  if (!written || written[2] !== posted.result.cosaBuildId) return undefined
  const status = Number(written[1])
  let parsed: BootTestRecord
  try {
    parsed = parseKolaReport(await readFile(join(workdir, KOLA_REPORT), 'utf8'), status)
  } catch (err) {
    parsed = record('failed', `kola exited ${status} without a readable report: ${(err as Error).message}`.slice(0, 500))
  }
  await keepFiles(workdir, (name, path) => logs.keepAttachment(build.id, name, path))
  return { mode, record: parsed }
}

/** kola writes each machine's files under <output-dir>/<test>/<machine>/. */
async function keepFiles (workdir: string, keep: (name: BootTestFile, path: string) => Promise<void>) {
  const root = join(workdir, KOLA_DIR)
  const dirs = await readdir(root, { withFileTypes: true }).catch(() => [])
  for (const test of dirs.filter((d) => d.isDirectory() && d.name !== 'reports')) {
    for (const machine of await readdir(join(root, test.name), { withFileTypes: true })) {
      if (!machine.isDirectory()) continue
      const from = join(root, test.name, machine.name)
      for (const name of BOOT_TEST_FILES) await keep(name, join(from, name)).catch(() => undefined)
      return
    }
  }
}
