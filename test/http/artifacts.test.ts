import { connect } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { LocalStore } from '../../src/artifacts/local-store.js'
import { configRepo, register, startApp } from '../helpers.js'

// Path traversal against the download routes, over a real socket with the
// bytes sent as written (no client normalises them). Fastify decodes %2f
// inside a parameter, so these reach the handlers as `../` unless refused.

const SECRET = 'cosa-buildd-secret-outside-the-store'

function rawGet (port: number, path: string): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    socket.on('data', (d) => { data += d.toString('latin1') })
    socket.on('end', () => resolve({ status: Number(data.split(' ')[1]), body: data }))
    socket.on('error', reject)
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
  })
}

t.test('no path reaches a byte outside the store', async (t) => {
  const h = await startApp(t)
  const repo = await configRepo(t)
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' } })
  // A published build, written the way the publisher writes it, and secrets around the store.
  const store = new LocalStore(join(h.dataDir, 'store'))
  await store.putBytes('minimal/builds/builds.json', Buffer.from('{"schema-version":"1.0.0","builds":[{"id":"1.0","arches":["x86_64"]}],"timestamp":"2026-11-26T00:00:00Z"}'), 'application/json')
  await store.putBytes('minimal/builds/1.0/x86_64/meta.json', Buffer.from('{"buildid":"1.0"}'), 'application/json')
  await writeFile(join(h.dataDir, 'secret.txt'), SECRET)
  await writeFile(join(h.dataDir, 'store', 'secret.txt'), SECRET)
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = h.app.server.address() as { port: number }

  const ok = await rawGet(port, '/v1/streams/minimal/builds/1.0/x86_64/meta.json')
  t.equal(ok.status, 200, 'the control request reads the published file')
  t.match(ok.body, '"buildid":"1.0"')

  const attempts = [
    '/v1/streams/minimal/builds/..%2f..%2fsecret.txt',
    '/v1/streams/minimal/builds/1.0/x86_64/..%2f..%2f..%2f..%2fsecret.txt',
    '/v1/streams/minimal/builds/1.0/x86_64/..%2f..%2f..%2f..%2f..%2fsecret.txt',
    '/v1/streams/minimal/builds/1.0/..%2f..%2f..%2f/secret.txt',
    '/v1/streams/minimal/builds/%2e%2e/%2e%2e/%2e%2e/secret.txt',
    '/v1/streams/minimal/builds/1.0/%2e%2e/%2e%2e/secret.txt',
    '/v1/streams/minimal/builds/../../secret.txt',
    '/v1/streams/minimal/builds/1.0/x86_64/../../../../secret.txt',
    '/v1/streams/minimal/builds/1.0/x86_64/%2fetc%2fpasswd',
    '/v1/streams/minimal/builds/1.0/x86_64/%2F..%2F..%2F..%2Fsecret.txt',
    '/v1/streams/minimal/builds/1.0/x86_64/..%5c..%5c..%5csecret.txt',
    '/v1/streams/minimal/builds/1.0/x86_64/meta.json%00.txt',
    '/v1/streams/minimal/builds/1.0/x86_64/meta.json%00',
    '/v1/streams/minimal/builds/.staging/x/y',
    '/v1/streams/..%2f..%2fetc/builds/builds.json',
    '/v1/streams/..%2fsecret.txt/builds/builds.json',
    '/v1/streams/minimal/builds/1.0/x86_64/.',
    '/v1/builds/..%2f..%2fsecret.txt/artifacts/qemu',
    '/v1/builds/01ARZ3NDEKTSV4RRFFQ69G5FAV/artifacts/..%2f..%2f..%2fsecret.txt',
    '/v1/builds/01ARZ3NDEKTSV4RRFFQ69G5FAV/artifacts/%2fetc%2fpasswd'
  ]
  for (const path of attempts) {
    const res = await rawGet(port, path)
    t.ok(res.status === 400 || res.status === 404, `${path} → ${res.status}`)
    t.notMatch(res.body, SECRET, 'no byte of the secret')
    t.notMatch(res.body, /root:x:0:0/, 'no byte of /etc/passwd')
  }
})

t.test('behind tokens, published files are cached privately only', async (t) => {
  const READ = 'read-token-0123456789abcdef'
  const ADMIN = 'admin-token-0123456789abcdef'
  for (const tokens of [undefined, { read: [READ], submit: [], admin: [ADMIN] }]) {
    const h = await startApp(t, tokens ? { tokens } : {})
    const repo = await configRepo(t)
    const admin = tokens ? { authorization: `Bearer ${ADMIN}` } : {}
    t.equal((await h.app.inject({ method: 'PUT', url: '/v1/streams/s', headers: admin, payload: { config: { url: repo.url, ref: 'main' } } })).statusCode, 201)
    const store = new LocalStore(join(h.dataDir, 'store'))
    await store.putBytes('s/builds/builds.json', Buffer.from('{"schema-version":"1.0.0","builds":[],"timestamp":"2026-11-26T00:00:00Z"}'), 'application/json')
    await store.putBytes('s/builds/1.0/x86_64/meta.json', Buffer.from('{"buildid":"1.0"}'), 'application/json')
    const get = (url: string) => h.app.inject({ url, headers: tokens ? { authorization: `Bearer ${READ}` } : {} })
    const meta = await get('/v1/streams/s/builds/1.0/x86_64/meta.json')
    const index = await get('/v1/streams/s/builds/builds.json')
    t.equal(meta.statusCode, 200)
    // RFC 9110 §13.1: If-None-Match compares weakly; If-Modified-Since counts only without it.
    const conditional = (headers: Record<string, string>) => h.app.inject({
      url: '/v1/streams/s/builds/1.0/x86_64/meta.json', headers: { ...(tokens ? { authorization: `Bearer ${READ}` } : {}), ...headers }
    }).then((r) => r.statusCode)
    const modified = meta.headers['last-modified'] as string
    t.equal(await conditional({ 'if-none-match': `W/${meta.headers.etag}` }), 304, 'a weak tag matches')
    t.equal(await conditional({ 'if-modified-since': modified }), 304, 'not modified since')
    t.equal(await conditional({ 'if-modified-since': new Date(Date.parse(modified) - 60_000).toUTCString() }), 200, 'modified since')
    t.equal(await conditional({ 'if-none-match': '"other"', 'if-modified-since': modified }), 200, 'If-None-Match wins')
    if (tokens) {
      // RFC 9111 §3.5: `public` would let a shared cache answer callers without a token.
      t.equal(meta.headers['cache-control'], 'private, max-age=31536000, immutable', 'with tokens: private')
      t.equal(index.headers['cache-control'], 'private, no-cache')
      t.equal((await h.app.inject({ url: '/v1/streams/s/builds/1.0/x86_64/meta.json' })).statusCode, 401, 'and a token is needed')
    } else {
      t.equal(meta.headers['cache-control'], 'public, max-age=31536000, immutable', 'an open server: any cache may keep it')
      t.equal(index.headers['cache-control'], 'no-cache')
    }
  }
})
