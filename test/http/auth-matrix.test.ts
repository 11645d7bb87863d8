import { execa } from 'execa'
import type { RouteOptions } from 'fastify'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { hashToken } from '../../src/builds/result-token.js'
import type { Access } from '../../src/http/auth.js'
import { ensureInertImage, startCollecting as collectRoutes, INERT_IMAGE, ROOT, tempDir } from '../helpers.js'

await ensureInertImage()

// The authentication matrix (S4) over every route the app registers, found
// with an onRoute hook rather than listed by hand, so a new route cannot
// escape it; the route table against the OpenAPI document (API9); build
// tokens on the result route; and no token in the server log (S7).

const READ = 'read-token-0123456789abcdef'
const SUBMIT = 'submit-token-0123456789abcdef'
const ADMIN = 'admin-token-0123456789abcdef'
const TOKENS = { read: [READ], submit: [SUBMIT], admin: [ADMIN] }
const RANK = { read: 1, submit: 2, admin: 3 } as const
const ROLE_TOKEN = { read: READ, submit: SUBMIT, admin: ADMIN } as const
type Role = keyof typeof RANK

interface Endpoint {
  method: string
  url: string
  access: Access
  /** Left out of the OpenAPI document on purpose: schema.hide, or the /docs UI. */
  hidden: boolean
  /** The HEAD fastify adds to every GET route (exposeHeadRoutes). */
  derivedHead: boolean
  /** Takes a short-lived token in ?token= too (GET /v1/events). */
  queryToken: boolean
}

async function startCollecting (t: Test, overrides: Record<string, unknown> = {}, background = true) {
  const { app, routes } = await collectRoutes(t, overrides, background)
  return { app, routes: endpoints(routes) }
}

function endpoints (routes: RouteOptions[]): Endpoint[] {
  const flat = routes.flatMap((r) => (Array.isArray(r.method) ? r.method : [r.method]).map((method) => ({
    method,
    url: r.url,
    access: r.config?.access ?? 'public',
    queryToken: r.config?.queryToken === true,
    hidden: (r.schema as { hide?: boolean } | undefined)?.hide === true || r.url === '/docs' || r.url.startsWith('/docs/'),
    single: !Array.isArray(r.method)
  })))
  return flat.map(({ single, ...e }) => ({
    ...e,
    derivedHead: e.method === 'HEAD' && single && flat.some((o) => o.url === e.url && o.method === 'GET')
  }))
}

const openapiPath = (url: string) => url.replace(/:(\w+)/g, '{$1}')
const key = (e: { method: string, url: string }) => `${e.method} ${openapiPath(e.url)}`

/** Values that reach the handler: a registered stream, ids that look real. */
const PARAMS: Record<string, string> = {
  stream: 's',
  id: '01jzzzzzzzzzzzzzzzzzzzzzzz',
  name: 'qemu',
  buildId: '42.20250101.0',
  arch: 'x86_64',
  file: 'meta.json'
}
// A request to the event stream that passes auth and validation never ends:
// these probes end it at validation (400), which is past auth.
const ENDLESS: Record<string, string> = { '/v1/events': '?since=probe' }

const fill = (url: string) => url.replace(/:(\w+)/g, (_, name: string) => {
  if (PARAMS[name] === undefined) throw new Error(`no test value for :${name} in ${url}: add one to PARAMS`)
  return PARAMS[name]
}) + (ENDLESS[url] ?? '')

type Inject = { statusCode: number, headers: Record<string, unknown>, body: string, json: () => any }

t.test('the route table equals the OpenAPI document (API9)', async (t) => {
  const { app, routes } = await startCollecting(t, { tokens: TOKENS })
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json()
  const documented = new Map<string, any>()
  for (const [path, item] of Object.entries<Record<string, any>>(doc.paths)) {
    for (const method of ['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'trace']) {
      if (item[method]) documented.set(`${method.toUpperCase()} ${path}`, item[method])
    }
  }
  const served = routes.filter((r) => !r.hidden && !r.derivedHead)
  t.same(served.map(key).sort(), [...documented.keys()].sort(), 'every served route is documented, and nothing more')

  // What the document leaves out is the document itself, its UI and the dashboard's pages (no API, no data), nothing else.
  const undocumented = [...new Set(routes.filter((r) => r.hidden && !r.derivedHead).map((r) => r.url))].sort()
  t.same(undocumented.filter((u) => !u.startsWith('/docs')),
    ['/', '/assets/:file', '/builds', '/builds/:id', '/openapi.json', '/streams/:stream', '/token'],
    'the only hidden routes outside /docs are /openapi.json and the dashboard\'s')
  t.notOk(routes.some((r) => /\/(debug|tests?|internal|_[a-z]+)(\/|$)/i.test(r.url)), 'no debug or test routes')

  // A route without config.access is public (auth.ts defaults to it): the
  // public ones must be exactly these.
  const isPublic = routes.filter((r) => r.access === 'public' && !r.hidden).map(key).sort()
  t.same(isPublic, ['GET /healthz', 'GET /readyz', 'HEAD /healthz', 'HEAD /readyz'], 'the public API routes')

  // The security the document states is the access the route enforces.
  const scheme: Record<Access, string[]> = { public: [], read: ['bearerAuth'], submit: ['bearerAuth'], admin: ['bearerAuth'], build: ['buildToken'] }
  for (const r of served) {
    const op = documented.get(key(r))
    const stated = (op?.security ?? []).flatMap((s: object) => Object.keys(s))
    // The event stream also takes EventSource's short-lived query token.
    const expected = r.queryToken ? [...scheme[r.access], 'eventToken'] : scheme[r.access]
    t.same(stated, expected, `${key(r)} (${r.access}) documents security ${JSON.stringify(stated)}`)
  }
  t.comment('access of every route:\n' + routes.filter((r) => !r.url.startsWith('/docs'))
    .map((r) => `  ${r.access.padEnd(6)} ${key(r)}${r.derivedHead ? ' (derived from GET)' : ''}${r.hidden ? ' (hidden)' : ''}`).join('\n'))
})

t.test('every protected route: 401 without a valid token, 403 below its rank, through with it', async (t) => {
  const { app, routes } = await startCollecting(t, { tokens: TOKENS })
  const as = (authorization: string | undefined, method: string, url: string): Promise<Inject> =>
    app.inject({ method: method as 'GET', url, headers: authorization === undefined ? {} : { authorization } }) as Promise<Inject>
  const stream = { config: { url: 'file:///nonexistent', ref: 'main' }, image: INERT_IMAGE }
  t.equal((await app.inject({ method: 'PUT', url: '/v1/streams/s', payload: stream, headers: { authorization: `Bearer ${ADMIN}` } })).statusCode, 201)

  const malformed = [
    'Bearer',
    'Bearer ',
    `Bearer  ${ADMIN}`,
    `Bearer ${ADMIN} x`,
    'Bearer a b',
    'Basic x',
    `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}`,
    `Token ${ADMIN}`,
    ADMIN,
    `Bearer ${ADMIN}, Bearer ${ADMIN}`,
    `Bearer ${ADMIN},`,
    `Bearer "${ADMIN}"`,
    `Bearer ${'x'.repeat(513)}`,
    `Bearer ${ADMIN}\u0000`,
    ''
  ]
  const unknown = ['Bearer wrong-token-0123456789', `Bearer ${ADMIN.slice(0, -1)}`, `Bearer ${ADMIN}x`, `Bearer ${ADMIN.toUpperCase()}`,
    `Bearer ${hashToken(ADMIN)}`]
  const protectedRoutes = routes.filter((r) => r.access === 'read' || r.access === 'submit' || r.access === 'admin')
  t.ok(protectedRoutes.length >= 15, `${protectedRoutes.length} protected routes found`)

  const isUnauthorized = (res: Inject, what: string) => {
    t.equal(res.statusCode, 401, what)
    if (res.statusCode !== 401) return
    t.equal(res.headers['www-authenticate'], 'Bearer realm="cosa-buildd"', `${what}: challenge`)
    if (res.body) t.match(res.json(), { code: 'BLD_UNAUTHORIZED', message: /\S/ }, `${what}: body`)
  }

  for (const r of protectedRoutes) {
    const url = fill(r.url)
    const name = `${r.method} ${url} (${r.access})`
    isUnauthorized(await as(undefined, r.method, url), `${name}: no Authorization`)
    for (const header of malformed) isUnauthorized(await as(header, r.method, url), `${name}: malformed ${JSON.stringify(header.slice(0, 40))}`)
    for (const header of unknown) isUnauthorized(await as(header, r.method, url), `${name}: unknown token ${JSON.stringify(header.slice(0, 40))}`)

    // RFC 9110 §11.1: the scheme is case-insensitive.
    const lower = await as(`bearer ${ADMIN}`, r.method, url)
    t.ok(lower.statusCode !== 401 && lower.statusCode !== 403, `${name}: "bearer" (lowercase) is Bearer (${lower.statusCode})`)

    for (const role of Object.keys(RANK) as Role[]) {
      const res = await as(`Bearer ${ROLE_TOKEN[role]}`, r.method, url)
      if (RANK[role] < RANK[r.access as Role]) {
        t.equal(res.statusCode, 403, `${name} as ${role}: too low a rank`)
        if (res.body) t.match(res.json(), { code: 'BLD_FORBIDDEN', message: /\S/ }, `${name} as ${role}: body`)
      } else {
        t.ok(res.statusCode !== 401 && res.statusCode !== 403 && res.statusCode < 500, `${name} as ${role}: through (${res.statusCode})`)
      }
    }
  }

})

t.test('open mode: without tokens configured every route is open, except build results', async (t) => {
  const { app, routes } = await startCollecting(t)
  for (const r of routes.filter((r) => r.access === 'read' || r.access === 'submit' || r.access === 'admin')) {
    const res = await app.inject({ method: r.method as 'GET', url: fill(r.url), headers: { authorization: 'Bearer garbage-not-a-token' } })
    t.ok(res.statusCode !== 401 && res.statusCode !== 403 && res.statusCode < 500, `${r.method} ${r.url}: ${res.statusCode}`)
  }
  const result = await app.inject({ method: 'POST', url: `/v1/builds/${PARAMS.id}/result?outcome=built&arch=x86_64`, payload: {} })
  t.equal(result.statusCode, 401, 'the result route still needs a build token')
})

t.test('the result route takes only the token minted for that build', async (t) => {
  // No background work: builds stay where the test puts them.
  const { app, routes } = await startCollecting(t, { tokens: TOKENS }, false)
  const resultRoutes = routes.filter((r) => r.access === 'build')
  t.same(resultRoutes.map(key), ['POST /v1/builds/{id}/result', 'PUT /v1/builds/{id}/workdir'], 'two routes take build tokens')
  const admin = { authorization: `Bearer ${ADMIN}` }
  await app.inject({ method: 'PUT', url: '/v1/streams/s', headers: admin, payload: { config: { url: 'file:///nonexistent', ref: 'main' }, image: INERT_IMAGE } })
  await app.inject({ method: 'PUT', url: '/v1/streams/t', headers: admin, payload: { config: { url: 'file:///nonexistent', ref: 'main' }, image: INERT_IMAGE } })
  const submit = async (stream: string) =>
    (await app.inject({ method: 'POST', url: `/v1/streams/${stream}/builds`, headers: admin, payload: {} })).json().id as string
  const a = await submit('s')
  const b = await submit('t')
  // What the runner does when it starts a container: mint a token, keep its hash.
  const TOKEN_A = 'build-a-token-0123456789abcdefghijklmnopqrstu'
  const TOKEN_B = 'build-b-token-0123456789abcdefghijklmnopqrstu'
  const { store, lifecycle } = app.core
  // Claimed through the lifecycle, so that this process holds their leases (the runner's writes are fenced).
  t.same([(await lifecycle.claimNext(10))?.id, (await lifecycle.claimNext(10))?.id], [a, b])
  t.ok(await lifecycle.record(a, { resultTokenHash: hashToken(TOKEN_A) }))
  t.ok(await lifecycle.record(b, { resultTokenHash: hashToken(TOKEN_B) }))

  const post = (id: string, authorization?: string) => app.inject({
    method: 'POST',
    url: `/v1/builds/${id}/result?outcome=built&arch=x86_64`,
    headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
    payload: '{}'
  })
  t.equal((await post(a)).statusCode, 401, 'no token: 401')
  for (const header of ['Bearer', 'Basic x', `Basic ${TOKEN_A}`, TOKEN_A, `Bearer ${TOKEN_A} x`, 'Bearer a b']) {
    t.equal((await post(a, header)).statusCode, 401, `malformed ${JSON.stringify(header)}: 401`)
  }
  t.equal((await post(a, 'Bearer wrong-token-0123456789')).statusCode, 401, 'unknown token: 401')
  for (const role of Object.keys(RANK) as Role[]) {
    t.equal((await post(a, `Bearer ${ROLE_TOKEN[role]}`)).statusCode, 401, `a ${role} API token is not a build token`)
  }
  const other = await post(a, `Bearer ${TOKEN_B}`)
  t.equal(other.statusCode, 403, 'build B\'s token on build A: 403')
  t.equal(other.json().code, 'BLD_FORBIDDEN')
  t.equal((await post(PARAMS.id!, `Bearer ${TOKEN_A}`)).statusCode, 403, 'a build token on any other build, even one that does not exist: 403')

  const own = await post(a, `Bearer ${TOKEN_A}`)
  t.ok(![401, 403].includes(own.statusCode) && own.statusCode < 500, `build A's own token is accepted (then the body is judged): ${own.statusCode}`)
  t.equal(own.json().code, 'BLD_RESULT_REJECTED', 'an empty meta.json is rejected on its merits')

  // The upload of a build's files takes the same token, and only it.
  const upload = (id: string, authorization?: string) => app.inject({
    method: 'PUT',
    url: `/v1/builds/${id}/workdir?cosaBuild=1.0`,
    headers: { 'content-type': 'application/x-tar', ...(authorization === undefined ? {} : { authorization }) },
    payload: Buffer.alloc(1024)
  })
  t.equal((await upload(a)).statusCode, 401, 'upload, no token: 401')
  t.equal((await upload(a, `Bearer ${ADMIN}`)).statusCode, 401, 'upload, an API token is not a build token')
  t.equal((await upload(a, `Bearer ${TOKEN_B}`)).statusCode, 403, 'upload, build B\'s token on build A: 403')
  const ownUpload = await upload(a, `Bearer ${TOKEN_A}`)
  t.equal(ownUpload.json().code, 'BLD_UPLOAD_NOT_TAKEN', 'build A\'s own token is accepted, then the engine is judged (it shares the service\'s disk)')

  // After the build has ended, its token has no use left (S4: expired callback).
  t.ok(await lifecycle.finish((await store.builds.getBuild(a))!, { state: 'failed' }))
  const expired = await post(a, `Bearer ${TOKEN_A}`)
  t.equal(expired.statusCode, 401, 'the token of a finished build has expired: 401')
  t.equal((await upload(a, `Bearer ${TOKEN_A}`)).statusCode, 401, 'for uploads too')

  // The token is checked before the query and before the body is read.
  const unauthBadQuery = await app.inject({ method: 'POST', url: `/v1/builds/${a}/result`, headers: { 'content-type': 'application/json' }, payload: '{}' })
  t.equal(unauthBadQuery.statusCode, 401, 'no token and no query: 401 first')
})

t.test('tokens never reach the server log', async (t) => {
  // The real process, with its own logger and redaction, at trace level.
  const dataDir = await tempDir(t, 'cosa-buildd-data-')
  const configFile = join(dataDir, 'config.json')
  await writeFile(configFile, JSON.stringify({ storage: { minFreeBytes: 0 }, builds: { maxConcurrent: 1, defaultImage: INERT_IMAGE } }))
  const child = execa(process.execPath, [...process.execArgv, join(ROOT, 'src/server.ts')], {
    env: {
      COSA_BUILDD_CONFIG: configFile,
      COSA_BUILDD_PORT: '0',
      COSA_BUILDD_DATA_DIR: dataDir,
      COSA_BUILDD_LOG_LEVEL: 'trace',
      COSA_BUILDD_READ_TOKENS: READ,
      COSA_BUILDD_SUBMIT_TOKENS: SUBMIT,
      COSA_BUILDD_ADMIN_TOKENS: ADMIN,
      COSA_BUILDD_ALLOW_FILE_URLS: '1'
    },
    reject: false,
    all: true
  })
  t.teardown(() => { child.kill('SIGKILL') })
  let log = ''
  const base = await new Promise<string>((resolve, reject) => {
    child.all!.on('data', (d) => {
      log += d
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(log)
      if (m) resolve(m[1]!)
    })
    child.once('exit', () => reject(new Error(`the server exited: ${log}`)))
    setTimeout(() => reject(new Error(`no listen line: ${log}`)), 60_000).unref()
  })
  const BUILD_TOKEN = 'build-token-not-minted-0123456789abcdef'
  const secrets = [READ, SUBMIT, ADMIN, BUILD_TOKEN]
  const call = async (method: string, path: string, authorization: string, body?: unknown) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    await res.arrayBuffer()
    return res.status
  }
  const statuses: number[] = []
  statuses.push(await call('PUT', '/v1/streams/s', `Bearer ${ADMIN}`, { config: { url: 'file:///nonexistent', ref: 'main' }, image: INERT_IMAGE }))
  for (const token of secrets) {
    for (const authorization of [`Bearer ${token}`, `bearer ${token}`, `Basic ${token}`, token, `Bearer ${token} x`]) {
      statuses.push(await call('GET', '/v1/streams', authorization))
      statuses.push(await call('GET', '/v1/builds/nope', authorization))
      statuses.push(await call('PUT', '/v1/streams/s', authorization, { config: { url: 'file:///nonexistent', ref: 'main' }, image: INERT_IMAGE }))
      statuses.push(await call('POST', '/v1/builds/nope/cancel', authorization))
      statuses.push(await call('POST', '/v1/builds/nope/result?outcome=built&arch=x86_64', authorization, {}))
      statuses.push(await call('GET', '/v1/nothing', authorization))
    }
  }
  statuses.push(await call('POST', '/v1/streams/s/builds', `Bearer ${SUBMIT}`, {}))
  t.ok(statuses.includes(201) && statuses.includes(401) && statuses.includes(403) && statuses.includes(404), `a mix of answers: ${[...new Set(statuses)].sort().join(', ')}`)
  t.notOk(statuses.some((s) => s >= 500), 'no 5xx')

  // A token a client wrongly puts in the URL is the client's leak, but still one.
  await call('GET', `/v1/streams?access_token=${READ}`, 'Bearer x')
  await new Promise((resolve) => setTimeout(resolve, 500))
  child.kill('SIGTERM')
  await child
  const inQuery = log.split('\n').filter((line) => line.includes(`access_token=${READ}`)).length
  const withoutQuery = log.split('\n').filter((line) => !line.includes('access_token=')).join('\n')

  // One line per answer; successful reads are logged at debug, so every line here is a refusal or a change.
  const answered = (log.match(/"msg":"answered"/g) ?? []).length
  const loud = statuses.filter((s) => s >= 400 || s === 201).length
  t.ok(answered >= loud, `the log has every refused or changing request (${answered} "answered" lines for ${loud})`)
  for (const secret of secrets) {
    t.notOk(withoutQuery.includes(secret), `the log never contains the ${secret.split('-')[0]} token`)
    t.notOk(withoutQuery.includes(secret.slice(0, 20)), `nor a prefix of it (${secret.split('-')[0]})`)
  }
  t.equal(inQuery, 0, 'a token sent in the query string is redacted from the logged URL')
  t.ok(log.includes('access_token=%5Bredacted%5D'), 'the logged URL says it was redacted')
})
