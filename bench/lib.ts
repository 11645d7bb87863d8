import { execa } from 'execa'
import { cp, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const ROOT = new URL('..', import.meta.url).pathname

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

export interface LoadResult { rps: number, p50: number, p99: number, non2xx: number, errors: number, total: number }

/** HTTP load from a separate process, so client and server do not share a core's event loop. */
export async function load (opts: {
  url: string, duration: number, method?: string, body?: string, headers?: Record<string, string>, keys?: number, cpu?: number
}) {
  const argv = [process.execPath, '--import', 'tsx', join(ROOT, 'bench/load-client.ts'), JSON.stringify(opts)]
  const { stdout } = opts.cpu === undefined ? await execa(argv[0]!, argv.slice(1)) : await execa('taskset', ['-c', String(opts.cpu), ...argv])
  return JSON.parse(stdout) as LoadResult
}

/** A git repository holding a copy of examples/<name>. */
export async function exampleRepo (name = 'minimal') {
  const dir = join(await mkdtemp(join(tmpdir(), 'cosa-bench-')), name)
  await cp(join(ROOT, 'examples', name), dir, { recursive: true })
  const git = (...a: string[]) => execa('git', ['-c', 'user.name=b', '-c', 'user.email=b@b.invalid', ...a], { cwd: dir })
  await git('init', '-q', '--initial-branch=main')
  await git('add', '-A')
  await git('commit', '-qm', 'init')
  return dir
}
