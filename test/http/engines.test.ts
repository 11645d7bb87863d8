import Fastify from 'fastify'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import app from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { serverOptions } from '../../src/server.js'
import { makeCertificates, startEngine } from '../engine.js'
import { requireDocker, startApp, tempDir, type TestApp } from '../helpers.js'

// The admin API of engines on the real Docker engine (the shared one over
// its socket, and engines of the test's own over mutual TLS on 127.0.0.1).

const SOCKET = 'unix:///var/run/docker.sock'

const put = (h: TestApp, name: string, body: object) => h.app.inject({ method: 'PUT', url: `/v1/engines/${name}`, payload: body })
const list = async (h: TestApp) => (await h.app.inject({ url: '/v1/engines' })).json().engines as Array<Record<string, unknown>>
const one = async (h: TestApp, name: string) => (await list(h)).find((e) => e.name === name)

t.test('the config engine is listed; engines are added, changed, drained and removed; kept across a restart', async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = await tempDir(t, 'cosa-buildd-engines-')
  const h = await startApp(t, { dataDir, builds: { maxConcurrent: 3 } }, { background: false })
  t.match(await list(h), [{
    name: 'local', host: SOCKET, tls: false, arch: 'x86_64', capacity: 3, source: 'config', draining: false, runningBuilds: 0,
    reachable: true, dockerVersion: /^\d+\.\d+/
  }], 'without engines in the config: the local one, with room for builds.maxConcurrent')

  const added = await put(h, 'second', { host: SOCKET, labels: { disk: 'ssd' } })
  t.equal(added.statusCode, 201)
  t.match(added.json(), { name: 'second', capacity: 1, labels: { disk: 'ssd' }, source: 'api', reachable: true, dockerVersion: /\d/ })
  const changed = await put(h, 'second', { host: SOCKET, capacity: 2 })
  t.equal(changed.statusCode, 200)
  t.match(changed.json(), { capacity: 2, labels: {} })
  t.match((await h.app.inject({ method: 'POST', url: '/v1/engines/second/drain' })).json(), { name: 'second', draining: true })
  t.match(await one(h, 'second'), { draining: true })

  const down = await put(h, 'gone', { host: 'unix:///nonexistent/docker.sock' })
  t.equal(down.statusCode, 201, 'an engine that does not answer is kept')
  t.match(down.json(), { reachable: false, lastError: /unavailable \(ENOENT\)/ })

  await h.app.close()
  const again = await startApp(t, { dataDir, builds: { maxConcurrent: 3 } }, { background: false })
  t.same((await list(again)).map((e) => [e.name, e.source, e.draining]), [['gone', 'api', false], ['local', 'config', false], ['second', 'api', true]],
    'added engines and their drain flags outlive a restart')
  t.match((await again.app.inject({ method: 'POST', url: '/v1/engines/second/undrain' })).json(), { draining: false })
  t.equal((await again.app.inject({ method: 'DELETE', url: '/v1/engines/gone' })).statusCode, 204)
  t.equal((await again.app.inject({ method: 'DELETE', url: '/v1/engines/gone' })).json().code, 'BLD_ENGINE_NOT_FOUND')
  t.same((await list(again)).map((e) => e.name), ['local', 'second'])
})

t.test('two instances on one database: what one adds, drains or removes, the other takes on at its next sync', async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = await tempDir(t, 'cosa-buildd-engines-')
  const [one, two] = [await startApp(t, { dataDir }, { background: false }), await startApp(t, { dataDir }, { background: false })]
  t.equal((await put(one, 'second', { host: SOCKET, capacity: 2 })).statusCode, 201)
  const registry = two.app.core.engines
  t.equal(registry.entry('second'), undefined, 'not before a sync')
  await two.app.core.engineAdmin.sync()
  t.match(registry.entry('second'), { capacity: 2, draining: false })
  const first = registry.get('second')
  await one.app.inject({ method: 'POST', url: '/v1/engines/second/drain' })
  await put(one, 'second', { host: SOCKET, capacity: 3 })
  await two.app.core.engineAdmin.sync()
  t.match(registry.entry('second'), { capacity: 3, draining: true })
  t.equal(registry.get('second'), first, 'the same live engine while it is where it was')
  await put(one, 'second', { host: SOCKET, arch: 'aarch64' })
  await two.app.core.engineAdmin.sync()
  t.not(registry.get('second'), first, 'made anew when it moved')
  t.equal(await registry.get('second')!.arch(), 'aarch64')
  await one.app.inject({ method: 'DELETE', url: '/v1/engines/second' })
  await two.app.core.engineAdmin.sync()
  t.same(registry.all().map((e) => e.name), ['local'])
})

t.test('refusals: bad fields 400, unreadable certificates 422, config engines 409, unknown 404; never a 5xx', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, {}, { background: false })
  const dir = await tempDir(t)
  await writeFile(join(dir, 'not.pem'), 'not a certificate')
  const answers = [
    [await put(h, 'r', { host: 'tcp://127.0.0.1:2376' }), 400, 'BLD_INVALID_REQUEST', /tls.*mutual TLS is required/],
    [await put(h, 'r', { host: SOCKET, tls: { ca: 'a', cert: 'b', key: 'c' } }), 400, 'BLD_INVALID_REQUEST', /takes no tls/],
    [await put(h, 'r', { host: 'ssh://x' }), 400, 'BLD_INVALID_REQUEST', /unix:\/\/\/path/],
    [await put(h, 'Bad_Name', { host: SOCKET }), 400, 'BLD_INVALID_REQUEST', /./],
    [await put(h, 'r', { host: 'tcp://127.0.0.1:2376', tls: { ca: join(dir, 'none.pem'), cert: join(dir, 'not.pem'), key: join(dir, 'not.pem') } }),
      422, 'BLD_ENGINE_INVALID', /tls\.ca: cannot read .*none\.pem \(ENOENT\)/],
    [await put(h, 'r', { host: 'tcp://127.0.0.1:2376', tls: { ca: join(dir, 'not.pem'), cert: join(dir, 'not.pem'), key: join(dir, 'not.pem') } }),
      422, 'BLD_ENGINE_INVALID', /not\.pem is not a PEM file/],
    [await put(h, 'local', { host: SOCKET }), 409, 'BLD_ENGINE_CONFIGURED', /configuration file/],
    [await h.app.inject({ method: 'DELETE', url: '/v1/engines/local' }), 409, 'BLD_ENGINE_CONFIGURED', /configuration file/],
    [await h.app.inject({ method: 'POST', url: '/v1/engines/nope/drain' }), 404, 'BLD_ENGINE_NOT_FOUND', /PUT \/v1\/engines/]
  ] as const
  for (const [res, status, code, message] of answers) {
    t.equal(res.statusCode, status, res.body)
    t.equal(res.json().code, code)
    t.match(res.json().message, message)
  }
  t.notMatch(JSON.stringify(answers.map(([r]) => r.body)), 'not a certificate', 'no file content in any answer')
})

t.test('DELETE is refused while the engine runs builds; admin only', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, { tokens: { admin: ['a'.repeat(32)], read: ['r'.repeat(32)] } }, { background: false })
  const admin = { authorization: `Bearer ${'a'.repeat(32)}` }
  t.equal((await h.app.inject({ url: '/v1/engines', headers: { authorization: `Bearer ${'r'.repeat(32)}` } })).statusCode, 403, 'a read token may not')
  t.equal((await h.app.inject({ method: 'PUT', url: '/v1/engines/second', headers: admin, payload: { host: SOCKET } })).statusCode, 201)
  const { store, lifecycle } = h.app.core
  await store.streams.putStream({ name: 's', config: { url: 'file:///x', ref: 'main' }, image: 'i', platforms: [], timeoutSeconds: 60, keep: 10,
    resources: {}, recipe: [], createdAt: 'c', updatedAt: 'u' })
  await lifecycle.submit({ id: 'b1', stream: 's', request: { force: false, skipPrune: false }, createdAt: new Date().toISOString() })
  const running = (await lifecycle.claimNext(5, { id: 'b1', engine: 'second', arch: 'x86_64', capacity: 1 }))!
  const busy = await h.app.inject({ method: 'DELETE', url: '/v1/engines/second', headers: admin })
  t.equal(busy.statusCode, 409)
  t.match(busy.json(), { code: 'BLD_ENGINE_BUSY', message: /runs 1 build.*drain it/ })
  const listed = (await h.app.inject({ url: '/v1/engines', headers: admin })).json().engines
  t.match(listed.find((e: { name: string }) => e.name === 'second'), { runningBuilds: 1, draining: false }, 'a refused delete leaves the drain flag as it was')
  t.equal((await h.app.inject({ method: 'PUT', url: '/v1/engines/second', headers: admin, payload: { host: 'unix:///elsewhere.sock' } })).json().code,
    'BLD_ENGINE_BUSY', 'nor may it move while it runs builds')
  await lifecycle.finish(running, { state: 'cancelled' })
  t.equal((await h.app.inject({ method: 'DELETE', url: '/v1/engines/second', headers: admin })).statusCode, 204, 'once they ended')
})

/** The app with its log (every level) kept in `lines`, to look for what must never be in it. */
async function appWithLog (t: Test, lines: string[]): Promise<TestApp> {
  const dataDir = await tempDir(t, 'cosa-buildd-engines-')
  const config = loadConfig({}, { dataDir, allowFileUrls: true, logLevel: 'trace' })
  const stream = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const fastify = Fastify({ ...serverOptions(config), logger: { level: 'trace', stream } })
  await fastify.register(app, { config, background: false })
  await fastify.ready()
  t.teardown(() => fastify.close())
  return { app: fastify, dataDir, waitFor: async () => undefined }
}

/** The base64 body of a PEM file, which no log line may hold any line of. */
const pemLines = async (path: string) => (await readFile(path, 'utf8')).split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))

t.test('a TLS engine added with PUT answers with its Docker version; a wrong certificate is unreachable, not a 5xx; no certificate is logged', async (t) => {
  if (!await requireDocker(t)) return
  const engine = await startEngine(t, { tls: true, images: [] })
  const tls = engine.tls!
  const lines: string[] = []
  const h = await appWithLog(t, lines)
  const host = `tcp://127.0.0.1:${tls.port}`
  let clock = Date.now()
  const added = await put(h, 'remote', { host, tls: { ca: tls.ca, cert: tls.cert, key: tls.key }, arch: 'aarch64' })
  t.comment(`PUT of a TLS engine (certificates read, engine probed): ${Date.now() - clock} ms`)
  t.equal(added.statusCode, 201, added.body)
  const version = (await engine.docker('version', '--format', '{{.Server.Version}}')).stdout.trim()
  t.match(added.json(), { name: 'remote', host, tls: true, arch: 'aarch64', reachable: true, dockerVersion: version }, 'the arch as configured: emulated arm64')
  t.notOk('lastError' in added.json())

  // A client certificate the engine's CA did not sign.
  const otherDir = join(await tempDir(t), 'other')
  await mkdir(otherDir)
  const other = await makeCertificates(otherDir)
  const impostor = await put(h, 'impostor', { host, tls: { ca: tls.ca, cert: other.cert, key: other.key } })
  t.equal(impostor.statusCode, 201, 'stored all the same')
  t.match(impostor.json(), { reachable: false, lastError: /TLS handshake|ECONNRESET|socket hang up/ })
  // And an engine whose certificate our CA did not sign.
  const untrusted = await put(h, 'untrusted', { host, tls: { ca: other.ca, cert: tls.cert, key: tls.key } })
  t.match(untrusted.json(), { reachable: false, lastError: /the TLS handshake with the Docker engine failed \(\w+\)/ })
  t.comment(`an impostor client: ${impostor.json().lastError}; an untrusted engine: ${untrusted.json().lastError}`)
  clock = Date.now()
  const listed = await h.app.inject({ url: '/v1/engines' })
  t.comment(`GET /v1/engines, 4 engines probed at once (2 refusing our TLS): ${Date.now() - clock} ms`)
  t.equal(listed.statusCode, 200)
  t.match(listed.json().engines.map((e: { name: string, reachable: boolean }) => [e.name, e.reachable]),
    [['impostor', false], ['local', true], ['remote', true], ['untrusted', false]])

  const secrets = [...await pemLines(tls.key), ...await pemLines(tls.cert), ...await pemLines(other.key)]
  t.ok(lines.length > 3, `the log has lines (${lines.length})`)
  t.notOk(secrets.some((s) => lines.some((l) => l.includes(s))), 'no line of a key or certificate is in the log')
  t.notOk(secrets.some((s) => listed.body.includes(s)), 'nor in an answer')
})

t.test('a stream names its arch; the default engine checks only streams of its own arch', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, {}, { background: false })
  const stream = (arches: string[], image = 'cosa-lite:latest-arm64-not-here') =>
    h.app.inject({ method: 'PUT', url: '/v1/streams/s', payload: { config: { url: 'file:///x', ref: 'main' }, image, arches } })
  t.equal((await stream(['x86_64'])).json().code, 'BLD_STREAM_UNFIT', 'an image the default engine lacks, for its arch: refused')
  const arm = await stream(['aarch64'])
  t.equal(arm.statusCode, 201, 'another arch is checked by its own engine at each build')
  t.same(arm.json().arches, ['aarch64'])
  t.match(arm.json().warnings, [/^no engine serves aarch64: .*no_engine_for_arch/], 'registration warns: no engine serves aarch64')
  const x86 = await stream(['x86_64'], 'cosa-lite:latest')
  t.equal(x86.statusCode, 200)
  t.notOk('warnings' in x86.json(), 'an arch an engine serves: no warnings')
  const multi = await stream(['aarch64', 'x86_64'])
  t.equal(multi.statusCode, 200, 'several arches, the primary first (checked by its own engine)')
  t.same(multi.json().arches, ['aarch64', 'x86_64'])
  t.equal((await stream(['aarch64', 'aarch64'])).statusCode, 400, 'an arch twice')
  t.equal((await stream(['i386'])).statusCode, 400)
})
