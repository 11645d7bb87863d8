// HTTP throughput of the API against a bare fastify hello-world, each server
// in its own process started as users start them (`node dist/server.js`, and
// `node bench/hello-server.mjs`: plain node, no loader), autocannon in a third
// process. GET /v1/builds/{id} of a finished and of a queued build, the same
// with If-None-Match (304), and submits with idempotency keys.
//   npm run bench bench/api.ts        (BENCH_SECONDS per run, default 10)
import { execa, type ResultPromise } from 'execa'
import { mkdtemp } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../test/helpers.js'
import { exampleRepo, fmt, load, ROOT } from './lib.js'

const duration = Number(process.env.BENCH_SECONDS ?? 10)
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

const baseline = await load({ ...client, url: `${hello.url}/hello`, duration })
const runs: Array<[string, Awaited<ReturnType<typeof load>>]> = [
  ['bare fastify `GET /hello` (baseline)', baseline],
  ['`GET /v1/builds/{id}`, a finished build', await load({ ...client, url: `${server.url}/v1/builds/${id}`, duration })],
  ['`GET /v1/builds/{id}` with `If-None-Match`, 304', await load({ ...client, url: `${server.url}/v1/builds/${id}`, duration, headers: { 'if-none-match': etag } })],
  ['`GET /v1/builds/{id}`, a queued build (position, waitingFor)', await load({ ...client, url: `${server.url}/v1/builds/${queuedId}`, duration })],
  // 1,000 keys cycled: the first use admits a build, later ones replay it.
  ['`POST /v1/streams/{s}/builds` with Idempotency-Key (1,000 keys)',
    await load({ ...client, url: `${server.url}/v1/streams/gone/builds`, duration, method: 'POST', body: '{"force":true}', keys: 1000 })]
]
await api('POST', `/v1/builds/${running.id}/cancel`)
await api('POST', `/v1/builds/${queuedId}/cancel`)

console.log(`\n${duration} s per run, 50 connections; each server and autocannon in its own process` +
  `${pinned ? ', servers on CPU 0 and the client on CPU 1' : ''}.\n`)
console.log('| target | req/s | p50 ms | p99 ms | non-2xx | vs baseline |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const [name, r] of runs) {
  console.log(`| ${name} | ${fmt(r.rps)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.non2xx} | ${fmt(r.rps / baseline.rps, 2)}× |`)
}
await new Promise((resolve) => setTimeout(resolve, 3000))
server.child.kill('SIGTERM')
hello.child.kill('SIGTERM')
await Promise.all([server.child, hello.child])
