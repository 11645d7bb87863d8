// HTTP throughput of the API against a bare fastify hello-world, each server
// in its own process started as users start them (`node dist/server.js`, and
// `node bench/hello-server.mjs`: plain node, no loader), autocannon in a third
// process. GET /v1/builds/{id} of a finished and of a queued build, the same
// with If-None-Match (304), and submits with idempotency keys.
//   npm run bench bench/api.ts        (BENCH_ROUNDS rounds, default 15, of BENCH_SECONDS per read, default 2)
import { execa, type ResultPromise } from 'execa'
import { mkdtemp } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../test/helpers.js'
import { exampleRepo, fmt, load, median, ROOT } from './lib.js'

const duration = Number(process.env.BENCH_SECONDS ?? 2)
// Servers on CPU 0, the load client on CPU 1: unpinned, client and server
// take turns on both cores and the baseline measures the scheduler as much as
// fastify (26k req/s unpinned, 66k pinned here).
const pinned = (await execa('taskset', ['-c', '0', 'true'], { reject: false })).exitCode === 0 && availableParallelism() >= 2
const client = pinned ? { cpu: 1 } : {}
const onCpu = (cpu: number, argv: string[]) => pinned ? ['taskset', ['-c', String(cpu), process.execPath, ...argv]] as const : [process.execPath, argv] as const


/** Starts a server process on a free port and resolves once it answers. */
async function serve (argv: string[], env: Record<string, string> = {}): Promise<{ url: string, child: ResultPromise }> {
  const port = await freePort()
  const [file, args] = onCpu(0, argv)
  const child = execa(file, args, { cwd: ROOT, env: { ...env, PORT: String(port), COSA_BUILDD_PORT: String(port), NODE_OPTIONS: '' }, stdio: 'ignore', reject: false })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    if (await fetch(`${url}/healthz`).then((r) => r.status < 500, () => false)) return { url, child }
    if (child.exitCode !== null) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`${argv.join(' ')} did not start`)
}

await execa('npm', ['run', 'build'], { cwd: ROOT })
const hello = await serve(['bench/hello-server.mjs'])
const dataDir = await mkdtemp(join(tmpdir(), 'cosa-bench-api-'))
const server = await serve(['dist/server.js'], {
  COSA_BUILDD_DATA_DIR: dataDir,
  COSA_BUILDD_ALLOW_FILE_URLS: '1',
  COSA_BUILDD_SUBMITS_PER_MINUTE: '0',
  COSA_BUILDD_MIN_FREE_BYTES: '0',
  ...(process.env.COSA_BUILDD_LOG_LEVEL ? { COSA_BUILDD_LOG_LEVEL: process.env.COSA_BUILDD_LOG_LEVEL } : {})
})
const api = async (method: string, path: string, body?: unknown): Promise<any> => {
  const res = await fetch(server.url + path, {
    method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  })
  return res.json()
}

// A finished build (its repository does not exist), and a queued one behind a running build of its stream.
await api('PUT', '/v1/streams/gone', { config: { url: 'file:///nonexistent', ref: 'main' } })
const { id } = await api('POST', '/v1/streams/gone/builds', {})
const repo = await exampleRepo()
await api('PUT', '/v1/streams/busy', { config: { url: `file://${repo}`, ref: 'main' }, recipe: [['shell', '--', 'sleep', '600'], ['build']] })
const running = await api('POST', '/v1/streams/busy/builds', {})
const { id: queuedId } = await api('POST', '/v1/streams/busy/builds', { force: true })
for (;;) {
  const [a, b] = await Promise.all([api('GET', `/v1/builds/${id}`), api('GET', `/v1/builds/${running.id}`)])
  if (a.state === 'failed' && b.state === 'running') break
  await new Promise((resolve) => setTimeout(resolve, 200))
}
const etag = (await fetch(`${server.url}/v1/builds/${id}`)).headers.get('etag')!

// This machine's speed drifts within seconds (a VM: one hello-world server
// gave 43k to 68k req/s in consecutive 2 s runs), so a run of each target one
// after another compares different machines. The reads are measured in many
// short rounds, each the baseline and every read back to back; a read's
// figure is the median of its rounds and its ratio the median of its
// per-round ratios.
const rounds = Number(process.env.BENCH_ROUNDS ?? 15)
type Target = Parameters<typeof load>[0]
const read = (url: string, headers?: Record<string, string>): Target => ({ ...client, duration, url, ...(headers ? { headers } : {}) })
const reads: Array<[string, Target]> = [
  ['bare fastify `GET /hello` (baseline)', read(`${hello.url}/hello`)],
  ['`GET /v1/builds/{id}`, a finished build', read(`${server.url}/v1/builds/${id}`)],
  ['`GET /v1/builds/{id}` with `If-None-Match`, 304', read(`${server.url}/v1/builds/${id}`, { 'if-none-match': etag })],
  ['`GET /v1/builds/{id}`, a queued build (position, waitingFor)', read(`${server.url}/v1/builds/${queuedId}`)]
]
const measured = reads.map(() => [] as Array<Awaited<ReturnType<typeof load>>>)
for (let r = 0; r < rounds; r++) {
  for (const [i, [, opts]] of reads.entries()) measured[i]!.push(await load(opts))
}
// 1,000 keys cycled: the first use admits a build, later ones replay it (once: it makes builds).
const submits = await load({ ...client, url: `${server.url}/v1/streams/gone/builds`, duration, method: 'POST', body: '{"force":true}', keys: 1000 })
await api('POST', `/v1/builds/${running.id}/cancel`)
await api('POST', `/v1/builds/${queuedId}/cancel`)

const baselines = measured[0]!.map((r) => r.rps)
console.log(`\n${rounds} rounds of ${duration} s per read, 50 connections; each server and autocannon in its own process` +
  `${pinned ? ', servers on CPU 0 and the client on CPU 1' : ''}. Medians over the rounds; the ratio is the median of` +
  ' each round\'s ratio to that round\'s baseline.\n')
console.log('| target | req/s | p50 ms | p99 ms | non-2xx | vs baseline | ratios per round |')
console.log('|---|---:|---:|---:|---:|---:|---|')
for (const [i, [name]] of reads.entries()) {
  const runs = measured[i]!
  const ratios = runs.map((r, k) => r.rps / baselines[k]!)
  console.log(`| ${name} | ${fmt(median(runs.map((r) => r.rps)))} | ${fmt(median(runs.map((r) => r.p50)))} | ` +
    `${fmt(median(runs.map((r) => r.p99)))} | ${fmt(median(runs.map((r) => r.non2xx)))} | ${fmt(median(ratios), 2)}× | ` +
    `${ratios.map((x) => fmt(x, 2)).join(', ')} |`)
}
console.log(`| \`POST /v1/streams/{s}/builds\` with Idempotency-Key (1,000 keys), once | ${fmt(submits.rps)} | ${fmt(submits.p50)} | ` +
  `${fmt(submits.p99)} | ${submits.non2xx} | ${fmt(submits.rps / median(baselines), 2)}× | |`)
await new Promise((resolve) => setTimeout(resolve, 3000))
server.child.kill('SIGTERM')
hello.child.kill('SIGTERM')
await Promise.all([server.child, hello.child])
