import { execa } from 'execa'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { configRepo, freePort, requireDocker, ROOT, tempDir } from '../helpers.js'
import { sleep, startServer, until } from '../server-process.js'

// The OpenAPI document as tools other than ours read it: Spectral's OpenAPI
// ruleset (the committed .spectral.yaml: all of spectral:oas, with each rule
// turned off saying why), and Prism proxying a whole scenario to the real
// server with --errors, so that any request or response the document does
// not describe is an error. Both run as their own processes, on the document
// as the server serves it.

const ADMIN = 'admin-token-0123456789abcdef'
const bin = (name: string) => join(ROOT, 'node_modules/.bin', name)
// Their own node processes, not followed by tap's coverage.
const ownEnv = { ...process.env, NODE_OPTIONS: '' }


t.test('Spectral (spectral:oas): no error and no warning on the served document', async (t) => {
  const dataDir = await tempDir(t, 'cosa-spectral-')
  const server = await startServer(t, dataDir, 1)
  const served = await (await fetch(`${server.url}/openapi.json`)).text()
  const path = join(dataDir, 'openapi.json')
  await writeFile(path, served)
  const lint = await execa(bin('spectral'), ['lint', '--ruleset', join(ROOT, '.spectral.yaml'), '--fail-severity', 'warn', path],
    { reject: false, all: true, env: ownEnv })
  t.equal(lint.exitCode, 0, `spectral lint: ${lint.all}`)
  t.match(lint.all, /No results with a severity of 'warn' or higher found!/)
})

t.test('Prism proxies a whole scenario to the real server: no violation', async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = await tempDir(t, 'cosa-prism-')
  const repo = await configRepo(t)
  const server = await startServer(t, dataDir, 1, { env: { COSA_BUILDD_ADMIN_TOKENS: ADMIN } })
  const port = await freePort()
  const prism = execa(bin('prism'), ['proxy', `${server.url}/openapi.json`, server.url, '--errors', '-p', String(port)],
    { reject: false, all: true, env: ownEnv, forceKillAfterDelay: false })
  let log = ''
  prism.all?.on('data', (d) => { log += d })
  t.teardown(async () => {
    prism.kill('SIGTERM')
    await prism
  })
  await until('Prism', 60_000, async () => log.includes('Prism is listening'))

  const base = `http://127.0.0.1:${port}`
  const seen: string[] = []
  const call = async (method: string, path: string, opts: { body?: unknown, headers?: Record<string, string>, token?: string | null } = {}) => {
    const headers: Record<string, string> = { ...opts.headers }
    if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? ADMIN}`
    if (opts.body !== undefined) headers['content-type'] = 'application/json'
    const res = await fetch(base + path, { method, headers, ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }) })
    const body = Buffer.from(await res.arrayBuffer())
    const what = `${method} ${path} -> ${res.status}`
    seen.push(what)
    t.notOk(res.headers.get('sl-violations'), `${what}: no violation ${res.headers.get('sl-violations') ?? ''}`)
    t.notMatch(body.toString('utf8', 0, 300), /stoplight\.io\/prism\/errors/, `${what}: not an error of Prism's`)
    return { status: res.status, headers: res.headers, json: () => JSON.parse(body.toString()) }
  }

  t.equal((await call('GET', '/healthz', { token: null })).status, 200)
  t.equal((await call('GET', '/readyz', { token: null })).status, 200)
  t.equal((await call('PUT', '/v1/streams/m', { body: { config: { url: repo.url, ref: 'main' }, keep: 5 } })).status, 201)
  t.equal((await call('PUT', '/v1/streams/m', { body: { config: { url: repo.url, ref: 'main' }, keep: 5 } })).status, 200)
  const stream = await call('GET', '/v1/streams/m')
  t.equal((await call('GET', '/v1/streams/m', { headers: { 'if-none-match': stream.headers.get('etag')! } })).status, 304)
  t.equal((await call('GET', '/v1/streams')).status, 200)
  const submitted = await call('POST', '/v1/streams/m/builds', { body: { force: true }, headers: { 'idempotency-key': 'contract-1' } })
  t.equal(submitted.status, 202)
  const id = submitted.json().id as string
  t.equal((await call('POST', '/v1/streams/m/builds', { body: { force: true }, headers: { 'idempotency-key': 'contract-1' } })).headers.get('idempotent-replayed'), 'true')
  let build
  for (;;) {
    build = (await call('GET', `/v1/builds/${id}`)).json()
    if (!['queued', 'running'].includes(build.state)) break
    await sleep(500)
  }
  t.equal(build.state, 'succeeded', build.message ?? '')
  const got = await call('GET', `/v1/builds/${id}`)
  t.equal((await call('GET', `/v1/builds/${id}`, { headers: { 'if-none-match': got.headers.get('etag')! } })).status, 304)
  t.equal((await call('GET', '/v1/builds?stream=m&limit=5')).status, 200)
  t.equal((await call('GET', `/v1/builds/${id}/log`)).status, 200)
  t.equal((await call('GET', `/v1/builds/${id}/meta.json`)).status, 200)
  const qemu = build.result.artifacts.find((a: { name: string }) => a.name === 'qemu')
  t.equal((await call('GET', qemu.url)).status, 200)
  t.equal((await call('HEAD', qemu.url)).status, 200)
  const part = await call('GET', qemu.url, { headers: { range: 'bytes=0-99' } })
  t.equal(part.status, 206)
  t.equal((await call('GET', qemu.url, { headers: { 'if-none-match': part.headers.get('etag')! } })).status, 304)
  t.equal((await call('GET', qemu.url, { headers: { range: `bytes=${qemu.size + 10}-` } })).status, 416)
  const cosaId = build.result.cosaBuildId as string
  t.equal((await call('GET', '/v1/streams/m/builds/builds.json')).status, 200)
  t.equal((await call('GET', `/v1/streams/m/builds/${cosaId}/x86_64/meta.json`)).status, 200)
  t.equal((await call('GET', `/v1/streams/m/builds/${cosaId}/x86_64/${qemu.path.split('/').at(-1)}`, { headers: { range: 'bytes=0-9' } })).status, 206)
  t.equal((await call('GET', `/v1/streams/m/builds/${cosaId}/x86_64/absent.json`)).status, 404)
  t.equal((await call('GET', `/v1/streams/m/builds/${cosaId}/absent.json`)).status, 404)
  t.equal((await call('PUT', `/v1/builds/${id}/pin`)).status, 200)
  t.equal((await call('DELETE', `/v1/builds/${id}/pin`)).status, 200)
  t.equal((await call('POST', `/v1/builds/${id}/cancel`)).status, 200, 'cancel of a finished build answers the build')
  t.equal((await call('GET', '/v1/builds/01ARZ3NDEKTSV4RRFFQ69G5FAV')).status, 404)
  t.equal((await call('GET', '/v1/builds/01ARZ3NDEKTSV4RRFFQ69G5FAV/artifacts/qemu')).status, 404)
  t.equal((await call('POST', '/v1/streams/nope/builds', { body: {} })).status, 404)
  t.equal((await call('GET', '/v1/streams/m', { token: 'not-a-token-0123456789' })).status, 401)
  t.equal((await call('GET', `/v1/builds/${id}/artifacts/kernel`)).status, 404)
  t.comment(`${seen.length} exchanges through Prism`)
})
