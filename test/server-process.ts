import { execa, type ResultPromise } from 'execa'
import { join } from 'node:path'
import type { Test } from 'tap'
import { ROOT } from './helpers.js'

// The real server process on a data directory, for the tests that kill it,
// stop it and start it again.

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Prints "tick N" once a second, then builds: a build that runs long enough to be interrupted. */
export const tickRecipe = (ticks: number) => [
  ['shell', '--', 'bash', '-c', `for i in $(seq 1 ${ticks}); do echo "tick $i"; sleep 1; done`],
  ['init', '--force', '--branch', '{ref}', '--commit', '{commit}', '{url}'],
  ['fetch'],
  ['build', '{build-flags}'],
  ['osbuild', '{platforms}']
]

export interface Server {
  url: string
  child: ResultPromise<{ reject: false, all: true, forceKillAfterDelay: false }>
  output: () => string
  /** Resolves with the exit code (null after a signal) once the process has exited. */
  exited: Promise<number | null>
}

/** The real process (or `command`, e.g. the CLI's serve); its own loader args keep coverage working. */
export async function startServer (t: Test, dataDir: string, maxConcurrent: number,
  opts: { env?: Record<string, string>, command?: string[] } = {}): Promise<Server> {
  const child = execa(process.execPath, [...process.execArgv, ...(opts.command ?? [join(ROOT, 'src/server.ts')])], {
    env: {
      COSA_BUILDD_LOG_LEVEL: 'info',
      COSA_BUILDD_PORT: '0',
      COSA_BUILDD_DATA_DIR: dataDir,
      COSA_BUILDD_MAX_CONCURRENT: String(maxConcurrent),
      COSA_BUILDD_ALLOW_FILE_URLS: '1',
      COSA_BUILDD_MIN_FREE_BYTES: '0',
      ...opts.env
    },
    reject: false,
    all: true,
    // execa SIGKILLs 5 s after a kill() by default; these tests send their own signals and time them.
    forceKillAfterDelay: false
  })
  let out = ''
  child.all.on('data', (d) => { out += d })
  const exited = child.then((r) => r.exitCode ?? null)
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    await child
    clearTimeout(timer)
  })
  const deadline = Date.now() + 120_000
  for (;;) {
    const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
    if (m) return { url: m[1]!, child, output: () => out, exited }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the server did not start:\n${out}`)
    await sleep(100)
  }
}

export async function api (server: Server, path: string, init: { method?: string, body?: unknown } = {}) {
  const res = await fetch(server.url + path, {
    method: init.method ?? 'GET',
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } })
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) }
}

export async function until<T> (what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(500)
  }
}

/**
 * A bash program that prints `lines` numbered lines of about 75 bytes to
 * stdout as fast as it can, and every 100th number to stderr as well; with
 * `pauseEvery`, a short sleep after that many lines (a flood that lasts);
 * with `quietAt`, 3 s of silence after that line.
 */
export const floodScript = (lines: number, opts: { pauseEvery?: number, quietAt?: number } = {}) =>
  `pad=$(printf '%.0s.' $(seq 1 60)); for i in $(seq 1 ${lines}); do echo "line $i $pad"; ` +
  'if (( i % 100 == 0 )); then echo "err $i" >&2; fi; ' +
  (opts.pauseEvery ? `if (( i % ${opts.pauseEvery} == 0 )); then sleep 0.05; fi; ` : '') +
  (opts.quietAt ? `if (( i == ${opts.quietAt} )); then sleep 3; fi; ` : '') + 'done'

export interface FloodCheck { lines: number, repeated: number, lost: number, errLines: number, errRepeated: number, errLost: number }

/** Compares a log with what floodScript printed: each stream's lines once, in order. */
export function checkFlood (log: string, lines: number): FloodCheck {
  const out = { lines: 0, repeated: 0, lost: 0, errLines: 0, errRepeated: 0, errLost: 0 }
  let last = 0
  let lastErr = 0
  for (const line of log.split('\n')) {
    const m = /^(line|err) (\d+)/.exec(line)
    if (!m) continue
    const k = Number(m[2])
    if (m[1] === 'line') {
      out.lines++
      if (k <= last) out.repeated++
      else { out.lost += k - last - 1; last = k }
    } else {
      out.errLines++
      if (k <= lastErr) out.errRepeated++
      else { out.errLost += (k - lastErr) / 100 - 1; lastErr = k }
    }
  }
  out.lost += lines - last
  out.errLost += Math.floor(lines / 100) - lastErr / 100
  return out
}
