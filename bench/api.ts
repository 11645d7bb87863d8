// HTTP throughput of the API against a bare fastify hello-world, in one run on
// one machine: GET /v1/builds/{id}, and submits with idempotency keys.
// The submit run serves requests only (no scheduler), so it measures
// admission (validation, idempotency, SQLite insert), not builds.
//   npm run bench bench/api.ts
import Fastify from 'fastify'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import app from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { fmt, load } from './lib.js'

const duration = Number(process.env.BENCH_SECONDS ?? 10)

async function listen (f: ReturnType<typeof Fastify>) {
  await f.listen({ port: 0, host: '127.0.0.1' })
  const addr = f.server.address() as { port: number }
  return `http://127.0.0.1:${addr.port}`
}

const hello = Fastify({ logger: false })
hello.get('/hello', async () => ({ hello: 'world' }))
const helloUrl = await listen(hello)

const dataDir = await mkdtemp(join(tmpdir(), 'cosa-bench-api-'))
const server = Fastify({ logger: false })
await server.register(app, { config: loadConfig({}, { dataDir, logLevel: 'silent', allowFileUrls: true, http: { submitsPerMinute: 0 } }), background: false })
const url = await listen(server)
await server.inject({ method: 'PUT', url: '/v1/streams/bench', payload: { config: { url: 'file:///nonexistent', ref: 'main' } } })
const { id } = (await server.inject({ method: 'POST', url: '/v1/streams/bench/builds', payload: {} })).json()
const { id: queuedId } = (await server.inject({ method: 'POST', url: '/v1/streams/bench/builds', payload: { force: true } })).json()
await server.inject({ method: 'POST', url: `/v1/builds/${id}/cancel` })

const rows: string[][] = []
const baseline = await load({ url: `${helloUrl}/hello`, duration })
const get = await load({ url: `${url}/v1/builds/${id}`, duration })
const getQueued = await load({ url: `${url}/v1/builds/${queuedId}`, duration })
rows.push(['bare fastify `GET /hello` (baseline)', fmt(baseline.rps), fmt(baseline.p50), fmt(baseline.p99), '1.00×'])
rows.push(['`GET /v1/builds/{id}`, a finished build', fmt(get.rps), fmt(get.p50), fmt(get.p99), `${fmt(get.rps / baseline.rps, 2)}×`])
rows.push(['`GET /v1/builds/{id}`, a queued build (+ queue position)', fmt(getQueued.rps), fmt(getQueued.p50), fmt(getQueued.p99),
  `${fmt(getQueued.rps / baseline.rps, 2)}×`])

// 1,000 keys cycled: the first use admits a build, later ones replay it.
const submit = await load({ url: `${url}/v1/streams/bench/builds`, duration, method: 'POST', body: '{"force":true}', keys: 1000 })
rows.push(['`POST /v1/streams/{s}/builds` with Idempotency-Key (1,000 keys)', fmt(submit.rps), fmt(submit.p50), fmt(submit.p99),
  `${fmt(submit.rps / baseline.rps, 2)}×`])
const builds = (await server.inject({ url: '/v1/builds?stream=bench&limit=500' })).json().builds.length

console.log(`\n${duration} s per run, 50 connections, autocannon in a separate process.\n`)
console.log('| target | req/s | p50 ms | p99 ms | vs baseline |')
console.log('|---|---:|---:|---:|---:|')
for (const r of rows) console.log(`| ${r.join(' | ')} |`)
console.log(`\nnon-2xx: get ${get.non2xx}, submit ${submit.non2xx}; builds admitted by the submit run: ${builds >= 500 ? '500+' : builds} (first page)`)
await server.close()
await hello.close()
