// Build logs under a flood (issue #16): BENCH_BUILDS builds at once (8), each
// printing BENCH_LINES numbered lines of about 75 bytes (100,000) through a
// recipe step on examples/minimal, with BENCH_FOLLOWERS clients following the
// logs (`?follow=true`, 50), then the same run without followers. The server
// runs in its own process, started as deploy/ starts it (`npm run build`, then
// `node dist/server.js`, configured by environment; BENCH_TSX=1 runs `node
// --import tsx src/server.ts` as `npm start` does); its peak RSS is the
// kernel's VmHWM. Baseline, in the same run: `docker logs -f` of each build container
// to a file, as a user would follow it without the service.
//   node --import tsx bench/logs.ts
import { execa, type ResultPromise } from 'execa'
import { createHash } from 'node:crypto'
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_RECIPE } from '../src/cosa/recipe.js'
import { checkFlood, floodScript, type FloodCheck } from '../test/server-process.js'
import { exampleRepo, fmt, ROOT } from './lib.js'

const BUILDS = Number(process.env.BENCH_BUILDS ?? 8)
const LINES = Number(process.env.BENCH_LINES ?? 100_000)
const FOLLOWERS = Number(process.env.BENCH_FOLLOWERS ?? 50)
// The runs, by number of followers: BENCH_RUNS=0 measures without followers only.
const RUNS = (process.env.BENCH_RUNS ?? `${FOLLOWERS},0`).split(',').map(Number)
// BENCH_SERVER_ROOT: another checkout's server (an earlier commit, say), measured the same way.
const SERVER_ROOT = process.env.BENCH_SERVER_ROOT ?? ROOT
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function startServer (dataDir: string) {
  // As deploy/ runs it (node dist/server.js); BENCH_TSX=1: as `npm start` does.
  const args = process.env.BENCH_TSX ? ['--import', 'tsx', join(SERVER_ROOT, 'src/server.ts')] : [join(SERVER_ROOT, 'dist/server.js')]
  const child = execa(process.execPath, args, {
    cwd: SERVER_ROOT,
    env: { COSA_BUILDD_PORT: '0', COSA_BUILDD_DATA_DIR: dataDir, COSA_BUILDD_MAX_CONCURRENT: String(BUILDS),
      COSA_BUILDD_ALLOW_FILE_URLS: '1', COSA_BUILDD_MIN_FREE_BYTES: '0' },
    reject: false, all: true, buffer: false
  })
  let out = ''
  const warnings: string[] = []
  child.all.on('data', (d) => {
    if (out.length < 100_000) out += d
    for (const line of String(d).split('\n')) if (/"level":(40|50|60)/.test(line)) warnings.push(line)
  })
  for (let i = 0; i < 600; i++) {
    const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
    if (m) return { child, url: m[1]!, warnings }
    await sleep(100)
  }
  throw new Error(`the server did not start: ${out}`)
}

const api = async (url: string, path: string, body?: unknown) => {
  const res = await fetch(url + path, body === undefined
    ? {}
    : { method: path.endsWith('/builds') ? 'POST' : 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  return res.json() as Promise<any>
}

/** A follower: reads the whole log as it grows, and keeps only its hash and size. */
async function follow (url: string, id: string) {
  const res = await fetch(`${url}/v1/builds/${id}/log?follow=true`)
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk)
    bytes += chunk.length
  }
  return { id, sha: hash.digest('hex'), bytes }
}

async function tailOf (file: string) {
  const fh = await open(file, 'r').catch(() => undefined)
  if (!fh) return ''
  try {
    const { size } = await fh.stat()
    const buf = Buffer.alloc(Math.min(size, 64 * 1024))
    await fh.read(buf, 0, buf.length, size - buf.length)
    return buf.toString('latin1')
  } finally {
    await fh.close()
  }
}

/** When `file` first ends with the flood's last line (performance.now()); NaN if it has not a minute after `ended`. */
async function lastLineAt (file: string, ended: Promise<unknown>) {
  let deadline = Infinity
  void ended.then(() => { deadline = performance.now() + 60_000 })
  while (performance.now() < deadline) {
    if ((await tailOf(file)).includes(`\nline ${LINES} `)) return performance.now()
    await sleep(50)
  }
  return NaN
}

const vmHwmKiB = async (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)

interface RunResult {
  seconds: number
  floodSeconds: number
  baselineSeconds: number
  idleRssMiB: number
  peakRssMiB: number
  stored: FloodCheck[]
  followersExact: number
  baseline: FloodCheck[]
  lostNotes: number
}

async function run (repo: string, followers: number): Promise<RunResult> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cosa-bench-logs-'))
  const server = await startServer(dataDir)
  const recipe = [['shell', '--', 'bash', '-c', floodScript(LINES)], ...DEFAULT_RECIPE]
  for (let i = 0; i < BUILDS; i++) await api(server.url, `/v1/streams/flood${i}`, { config: { url: `file://${repo}`, ref: 'main' }, recipe })
  const idleRssMiB = await vmHwmKiB(server.child.pid!) / 1024
  const t0 = performance.now()
  const ids: string[] = []
  for (let i = 0; i < BUILDS; i++) ids.push((await api(server.url, `/v1/streams/flood${i}/builds`, {})).id)
  let allEnded = () => {}
  const ended = new Promise<void>((resolve) => { allEnded = resolve })
  const storedAt = ids.map((id) => lastLineAt(join(dataDir, 'logs', `${id}.log`), ended))
  const copies = Array.from({ length: followers }, (_, i) => follow(server.url, ids[i % BUILDS]!))
  // Baseline: `docker logs -f` of each build container, started as soon as the container exists.
  const baselineDir = await mkdtemp(join(tmpdir(), 'cosa-bench-dl-'))
  const baselines: Array<Promise<unknown>> = []
  const baselineAt: Array<Promise<number>> = []
  const builds = await Promise.all(ids.map(async (id, i) => {
    for (;;) {
      const b = await api(server.url, `/v1/builds/${id}`)
      if (b.containerId) {
        const file = join(baselineDir, `${i}.log`)
        baselines[i] = execa('bash', ['-c', `docker logs -f ${b.containerId} > ${file} 2>&1`], { reject: false })
        baselineAt[i] = lastLineAt(file, ended)
      }
      if (b.containerId) break
      await sleep(20)
    }
    for (;;) {
      const b = await api(server.url, `/v1/builds/${id}`)
      if (!['queued', 'running'].includes(b.state)) return b
      await sleep(100)
    }
  }))
  const seconds = (performance.now() - t0) / 1000
  allEnded()
  const floodSeconds = (Math.max(...await Promise.all(storedAt)) - t0) / 1000
  const baselineSeconds = (Math.max(...await Promise.all(baselineAt)) - t0) / 1000
  const peakRssMiB = await vmHwmKiB(server.child.pid!) / 1024
  const done = await Promise.all(copies)
  await Promise.all(baselines)
  const stored: FloodCheck[] = []
  let followersExact = 0
  let lostNotes = 0
  for (const b of builds) {
    if (b.state !== 'succeeded') console.error(`build ${b.id}: ${b.state} ${b.message ?? ''}`)
    const log = await (await fetch(`${server.url}/v1/builds/${b.id}/log`)).text()
    stored.push(checkFlood(log, LINES))
    lostNotes += log.split('\n').filter((l) => / was lost: /.test(l)).length
    const sha = createHash('sha256').update(log).digest('hex')
    followersExact += done.filter((c) => c.id === b.id && c.sha === sha).length
  }
  const baseline = await Promise.all(ids.map(async (_, i) => checkFlood(await readFile(join(baselineDir, `${i}.log`), 'utf8'), LINES)))
  server.child.kill('SIGTERM')
  await server.child
  const warnings = server.warnings.filter((w) => !/no tokens configured/.test(w))
  if (warnings.length) console.error(`server warnings (${warnings.length}):\n${warnings.slice(0, 5).join('\n')}`)
  await rm(dataDir, { recursive: true, force: true })
  await rm(baselineDir, { recursive: true, force: true })
  return { seconds, floodSeconds, baselineSeconds, idleRssMiB, peakRssMiB, stored, followersExact, baseline, lostNotes }
}

const sum = (xs: FloodCheck[], k: keyof FloodCheck) => xs.reduce((a, x) => a + x[k], 0)
if (!process.env.BENCH_TSX) await execa('npm', ['run', 'build'], { cwd: SERVER_ROOT })
const repo = await exampleRepo()
const rows: string[] = []
for (const followers of RUNS) {
  const r = await run(repo, followers)
  const lines = sum(r.stored, 'lines')
  rows.push(`| cosa-buildd, ${followers} followers | ${fmt(r.floodSeconds, 1)} | ${fmt((lines - sum(r.stored, 'repeated')) / r.floodSeconds)} | ${fmt(r.seconds, 1)} | ` +
    `${fmt(r.idleRssMiB)} → ${fmt(r.peakRssMiB)} | ` +
    `${sum(r.stored, 'repeated') + sum(r.stored, 'errRepeated')} | ${sum(r.stored, 'lost') + sum(r.stored, 'errLost')} | ` +
    `${r.lostNotes} | ${followers ? `${r.followersExact} of ${followers}` : '–'} |`)
  rows.push(`| \`docker logs -f\` of the same ${BUILDS} containers (baseline) | ${fmt(r.baselineSeconds, 1)} | ` +
    `${fmt((sum(r.baseline, 'lines') - sum(r.baseline, 'repeated')) / r.baselineSeconds)} | – | – | ` +
    `${sum(r.baseline, 'repeated') + sum(r.baseline, 'errRepeated')} | ${sum(r.baseline, 'lost') + sum(r.baseline, 'errLost')} | – | – |`)
  await writeFile(join(tmpdir(), `cosa-bench-logs-${followers}.json`), JSON.stringify(r, null, 1))
}
await rm(join(repo, '..'), { recursive: true, force: true })

console.log(`\n${BUILDS} builds × ${fmt(LINES)} lines (+ every 100th on stderr), examples/minimal\n`)
console.log('| run | s to last line stored | lines/s stored | s to all ended | server RSS MiB idle → peak | repeated lines | lost lines | loss notes | followers = stored log |')
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|')
for (const r of rows) console.log(r)
