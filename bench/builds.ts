// Build-side timings, median of N runs each, on this machine:
//  - cosa-lite: full example build (init + fetch + build + osbuild qemu), and
//    an unchanged rebuild (init + build that finds nothing changed);
//  - the cosa-lite image build with a warm rootfs cache (scripts re-imported);
//  - submit-to-container-start through the API against a raw `docker run`
//    of the same image.
//   npm run bench bench/builds.ts
import { execa } from 'execa'
import Fastify from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import app from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { exampleRepo, fmt, median, ROOT } from './lib.js'

const N = Number(process.env.BENCH_RUNS ?? 5)
const IMAGE = 'cosa-lite:latest'

const seconds = async (fn: () => Promise<unknown>) => {
  const t0 = performance.now()
  await fn()
  return (performance.now() - t0) / 1000
}

const cosa = (work: string, cfg: string, ...args: string[]) =>
  execa('docker', ['run', '--rm', '--network=none', '-v', `${work}:/srv`, '-v', `${cfg}:${cfg}:ro`, IMAGE,
    'shell', '--', 'bash', '-c', args.join(' && ')])

const repo = await exampleRepo()
const full: number[] = []
const unchanged: number[] = []
for (let i = 0; i < N; i++) {
  const work = await mkdtemp(join(tmpdir(), 'cosa-bench-work-'))
  full.push(await seconds(() => cosa(work, repo, `cosa init file://${repo}`, 'cosa fetch', 'cosa build', 'cosa osbuild qemu')))
  unchanged.push(await seconds(() => cosa(work, repo, 'rm -rf src/config', `cosa init --force file://${repo}`, 'cosa build')))
  await rm(work, { recursive: true, force: true })
}

// Warm cache: the rootfs tarball is cached; drop the hashed tag so the
// scripts are appended and imported again.
const tag = (await execa('bash', [join(ROOT, 'images/cosa-lite/build.sh')])).stdout.split(' ')[0]!
const imageBuild: number[] = []
for (let i = 0; i < Math.min(N, 3); i++) {
  await execa('docker', ['rmi', tag])
  imageBuild.push(await seconds(() => execa('bash', [join(ROOT, 'images/cosa-lite/build.sh')])))
}

// Submit to container start. Raw: `docker run -d` then read State.StartedAt.
const startedAfter = async (containerId: string, t0: number) => {
  const { stdout } = await execa('docker', ['inspect', '-f', '{{.State.StartedAt}}', containerId])
  return (Date.parse(stdout.trim()) - t0) / 1000
}
const raw: number[] = []
for (let i = 0; i < N; i++) {
  const t0 = Date.now()
  const { stdout } = await execa('docker', ['run', '-d', '--network=none', IMAGE, 'shell', '--', 'sleep', '30'])
  raw.push(await startedAfter(stdout.trim(), t0))
  await execa('docker', ['rm', '-f', stdout.trim()])
}
const dataDir = await mkdtemp(join(tmpdir(), 'cosa-bench-data-'))
const server = Fastify({ logger: false })
await server.register(app, { config: loadConfig({}, { dataDir, logLevel: 'silent', allowFileUrls: true, builds: { stopGraceSeconds: 0 } }) })
await server.ready()
await server.inject({
  method: 'PUT', url: '/v1/streams/bench',
  payload: { config: { url: `file://${repo}`, ref: 'main' }, recipe: [['shell', '--', 'sleep', '30'], ['build']] }
})
const api: number[] = []
for (let i = 0; i < N; i++) {
  const t0 = Date.now()
  const { id } = (await server.inject({ method: 'POST', url: '/v1/streams/bench/builds', payload: {} })).json()
  let containerId: string | undefined
  while (!containerId) {
    containerId = (await server.inject({ url: `/v1/builds/${id}` })).json().containerId
    if (!containerId) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  let started = ''
  while (!started.startsWith('2')) {
    started = (await execa('docker', ['inspect', '-f', '{{.State.StartedAt}}', containerId])).stdout.trim()
    if (!started.startsWith('2') || started.startsWith('0001')) { started = ''; await new Promise((resolve) => setTimeout(resolve, 5)) }
  }
  api.push(await startedAfter(containerId, t0))
  await server.inject({ method: 'POST', url: `/v1/builds/${id}/cancel` })
  for (;;) {
    const b = (await server.inject({ url: `/v1/builds/${id}` })).json()
    if (b.state !== 'running' && b.state !== 'queued') break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
await server.close()
await rm(dataDir, { recursive: true, force: true })
await rm(join(repo, '..'), { recursive: true, force: true })

const rawMedian = median(raw)
console.log(`\nmedian of ${N} runs (image build: ${imageBuild.length})\n`)
console.log('| what | median s | runs (s) |')
console.log('|---|---:|---|')
const row = (what: string, xs: number[]) => console.log(`| ${what} | ${fmt(median(xs), 2)} | ${xs.map((x) => fmt(x, 2)).join(', ')} |`)
row('cosa-lite example: init + fetch + build + osbuild qemu', full)
row('cosa-lite example: unchanged rebuild (init + build)', unchanged)
row('cosa-lite image build, warm rootfs cache', imageBuild)
row('raw `docker run -d` to container start (baseline)', raw)
row('API submit to container start (mirror + resolve + create + start)', api)
console.log(`\nsubmit-to-start: ${fmt(median(api) / rawMedian, 2)}× the raw docker run; ` +
  `aim ≤ 1.2× + 0.1 s = ${fmt(rawMedian * 1.2 + 0.1, 2)} s`)
