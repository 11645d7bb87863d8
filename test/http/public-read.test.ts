import { connect } from 'node:net'
import t from 'tap'
import { configRepo, requireDocker, startApp } from '../helpers.js'

// A stream with `publicRead` serves its published builds without a token,
// for upstream `cosa buildfetch --url`, whose requests carry no credentials;
// everything else about it, and every other stream, still needs one.

const READ = 'read-token-0123456789abcdef'
const SUBMIT = 'submit-token-0123456789abcdef'
const ADMIN = 'admin-token-0123456789abcdef'

/** A request with no header but Host, as bare as a client can send. */
function bare (port: number, method: string, path: string): Promise<{ status: number, headers: Record<string, string>, body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let data = ''
    socket.on('data', (d) => { data += d.toString('latin1') })
    socket.on('end', () => {
      const [head = '', body = ''] = data.split('\r\n\r\n')
      const [status, ...lines] = head.split('\r\n')
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
      resolve({ status: Number(status!.split(' ')[1]), headers, body })
    })
    socket.on('error', reject)
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
  })
}

t.test('publicRead opens a stream\'s published builds, and nothing else', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, { tokens: { read: [READ], submit: [SUBMIT], admin: [ADMIN] } })
  const repo = await configRepo(t)
  const as = (token: string) => ({ authorization: `Bearer ${token}` })
  for (const [name, publicRead] of [['open', true], ['closed', false]] as const) {
    const put = await h.app.inject({ method: 'PUT', url: `/v1/streams/${name}`, headers: as(ADMIN), payload: { config: { url: repo.url, ref: 'main' }, publicRead } })
    t.equal(put.statusCode, 201)
    t.equal(put.json().publicRead, publicRead)
  }
  const built: Record<string, any> = {}
  for (const name of ['open', 'closed']) {
    const { id } = (await h.app.inject({ method: 'POST', url: `/v1/streams/${name}/builds`, headers: as(SUBMIT), payload: {} })).json()
    for (;;) {
      const b = (await h.app.inject({ url: `/v1/builds/${id}`, headers: as(READ) })).json()
      if (b.state !== 'queued' && b.state !== 'running') { built[name] = b; break }
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    t.equal(built[name].state, 'succeeded', built[name].message ?? '')
  }
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = h.app.server.address() as { port: number }
  const open = built.open
  const id = open.result.cosaBuildId
  const qemu = open.result.artifacts.find((a: { name: string }) => a.name === 'qemu')
  const file = qemu.path.split('/').at(-1)

  const index = await bare(port, 'GET', '/v1/streams/open/builds/builds.json')
  t.equal(index.status, 200, 'builds.json without any header')
  t.same(JSON.parse(index.body).builds.map((b: { id: string }) => b.id), [id])
  t.equal(index.headers['cache-control'], 'no-cache', 'public: no private marker')
  const meta = await bare(port, 'GET', `/v1/streams/open/builds/${id}/x86_64/meta.json`)
  t.equal(meta.status, 200)
  t.equal(meta.headers['cache-control'], 'public, max-age=31536000, immutable', 'public builds may be cached by anyone')
  const head = await bare(port, 'HEAD', `/v1/streams/open/builds/${id}/x86_64/${file}`)
  t.equal(head.status, 200, 'HEAD of a present file: 200, as buildfetch checks')
  t.equal(Number(head.headers['content-length']), qemu.size, 'with its Content-Length')
  t.equal(head.body, '', 'and no body')
  t.equal((await bare(port, 'HEAD', `/v1/streams/open/builds/${id}/x86_64/absent.qcow2`)).status, 404, 'HEAD of a missing file: 404')
  t.equal((await bare(port, 'GET', qemu.url)).status, 200, 'the artifact download by build id')

  for (const path of [`/v1/builds/${open.id}`, `/v1/builds/${open.id}/log`, `/v1/builds/${open.id}/meta.json`, '/v1/streams/open', '/v1/builds']) {
    t.equal((await bare(port, 'GET', path)).status, 401, `${path}: not part of the published builds, still 401`)
  }
  t.equal((await bare(port, 'POST', '/v1/streams/open/builds')).status, 401, 'submits still need a token')
  const closed = built.closed
  t.equal((await bare(port, 'GET', '/v1/streams/closed/builds/builds.json')).status, 401, 'another stream stays closed')
  t.equal((await bare(port, 'GET', closed.result.artifacts[0].url)).status, 401, 'and its downloads')
  t.equal((await bare(port, 'GET', '/v1/builds/01ARZ3NDEKTSV4RRFFQ69G5FAV/artifacts/qemu')).status, 401, 'an unknown build: 401, not 404')
  t.equal((await bare(port, 'GET', '/v1/streams/nope/builds/builds.json')).status, 401, 'an unknown stream: 401, not 404')
  const wrong = await h.app.inject({ url: '/v1/streams/open/builds/builds.json', headers: as('not-a-token-0123456789') })
  t.equal(wrong.statusCode, 401, 'a token that is sent is checked, public or not')
  const withToken = await h.app.inject({ url: `/v1/streams/closed/builds/${closed.result.cosaBuildId}/x86_64/meta.json`, headers: as(READ) })
  t.equal(withToken.statusCode, 200)
  t.equal(withToken.headers['cache-control'], 'private, max-age=31536000, immutable', 'a closed stream is cached privately')
})
