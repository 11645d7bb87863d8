import { createHmac } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { configRepo, requireDocker, tempDir } from '../helpers.js'
import { startServer, tickRecipe, until, type Server } from '../server-process.js'

// GET /v1/events against the real process and a real build: the events of a
// build in order, resumed across a restart with no gap and no repeat,
// filtered, and opened by EventSource's query token (and only by a good one).

const READ = 'read-token-events-0123456789'
const ADMIN = 'admin-token-events-0123456789'
const env = { COSA_BUILDD_READ_TOKENS: READ, COSA_BUILDD_ADMIN_TOKENS: ADMIN, COSA_BUILDD_EVENTS_HEARTBEAT_SECONDS: '1' }

interface Sse { id?: string, event?: string, data?: any, comment?: string, retry?: string }

/** A Server-Sent Events client on fetch: each message as it arrives. */
async function open (server: Server, path: string, headers: Record<string, string> = { authorization: `Bearer ${READ}` }) {
  const abort = new AbortController()
  const res = await fetch(server.url + path, { headers, signal: abort.signal })
  const messages: Sse[] = []
  let waiting: (() => void) | undefined
  let ended = false
  void (async () => {
    const decoder = new TextDecoder()
    let text = ''
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true })
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          const message: Sse = {}
          for (const line of text.slice(0, end).split('\n')) {
            if (line.startsWith(':')) message.comment = line.slice(1).trim()
            const m = /^(id|event|data|retry): (.*)$/.exec(line)
            if (m) (message as any)[m[1]!] = m[1] === 'data' ? JSON.parse(m[2]!) : m[2]
          }
          messages.push(message)
          text = text.slice(end + 2)
        }
        waiting?.()
      }
    } catch {}
    ended = true
    waiting?.()
  })()
  const events = () => messages.filter((m) => m.event)
  return {
    res,
    messages,
    events,
    close: () => abort.abort(),
    /** Waits until some message matches; returns it. */
    async until (what: string, fn: (m: Sse) => boolean, timeoutMs = 180_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = messages.find(fn)
        if (found) return found
        if (ended || Date.now() > deadline) throw new Error(`no ${what} in ${JSON.stringify(messages.slice(-5))}`)
        await new Promise<void>((resolve) => { waiting = resolve; setTimeout(resolve, 500) })
      }
    }
  }
}

const call = (server: Server, path: string, method = 'GET', body?: unknown) => fetch(server.url + path, {
  method,
  headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
  ...(body === undefined ? {} : { body: JSON.stringify(body) })
})

t.test('a build\'s events, in order, resumed across a restart, filtered', { timeout: 10 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = await tempDir(t, 'cosa-events-')
  const repo = await configRepo(t)
  let server = await startServer(t, dataDir, 1, { env })
  for (const [name, recipe] of [['slow', tickRecipe(20)], ['other', [['build']]]] as const) {
    t.equal((await call(server, `/v1/streams/${name}`, 'PUT', { config: { url: repo.url, ref: 'main' }, recipe })).status, 201)
  }

  const live = await open(server, '/v1/events')
  t.equal(live.res.status, 200)
  t.match(live.res.headers.get('content-type'), /^text\/event-stream/)
  t.match((await live.until('retry', (m) => m.retry !== undefined)).retry, /^\d+$/, 'retry: is set')
  const id = (await (await call(server, '/v1/streams/slow/builds', 'POST', {})).json() as any).id as string
  // Queued behind it (one slot), then cancelled: an event of another stream.
  const other = (await (await call(server, '/v1/streams/other/builds', 'POST', {})).json() as any).id as string
  t.equal((await call(server, `/v1/builds/${other}/cancel`, 'POST')).status, 200)

  // The log of a queued build answers its headers at once.
  const queuedLog = await until('a build queued', 5000, async () => {
    const third = (await (await call(server, '/v1/streams/other/builds', 'POST', {})).json() as any).id as string
    const started = Date.now()
    const res = await fetch(`${server.url}/v1/builds/${third}/log?follow=true`, { headers: { authorization: `Bearer ${READ}` } })
    void call(server, `/v1/builds/${third}/cancel`, 'POST')
    return { status: res.status, ms: Date.now() - started }
  })
  t.equal(queuedLog.status, 200)
  t.ok(queuedLog.ms < 3000, `headers of a queued build's followed log came at once (${queuedLog.ms} ms)`)

  const phase = await live.until('a recipe step', (m) => m.event === 'build.phase' && m.data.buildId === id && m.data.build.phase === 'shell')
  live.close()
  t.comment(`stopping the service after event ${phase.id}`)
  server.child.kill('SIGTERM')
  await server.exited
  server = await startServer(t, dataDir, 1, { env })

  const resumed = await open(server, '/v1/events', { authorization: `Bearer ${READ}`, 'last-event-id': phase.id! })
  t.equal((await resumed.until('an event', (m) => m.event !== undefined)).id, String(Number(phase.id) + 1), 'the next event first')
  const finished = await resumed.until('build.finished', (m) => m.event === 'build.finished' && m.data.buildId === id, 300_000)
  resumed.close()
  t.equal(finished.data.build.state, 'succeeded', JSON.stringify(finished.data.build))
  t.ok(finished.data.build.result.cosaBuildId, 'build.finished carries the cosa build id')
  t.ok(finished.data.build.result.artifacts.length > 0, 'and the artifacts')
  const get = await (await call(server, `/v1/builds/${id}`)).json() as any
  const { pinned: _pinned, ...shown } = get
  t.same(finished.data.build, shown, 'data.build is what GET /v1/builds/{id} shows')

  // What an EventSource would have processed: the live events up to the id it resumed from, then the resumed ones.
  const upTo = Number(finished.id)
  const seen = [...live.events().filter((m) => Number(m.id) <= Number(phase.id)), ...resumed.events()]
    .map((m) => Number(m.id)).filter((n) => n <= upTo)
  const all = await open(server, '/v1/events?since=0')
  await all.until('the same event', (m) => m.id === finished.id)
  all.close()
  const everything = all.events().map((m) => Number(m.id)).filter((n) => n <= upTo)
  t.same(seen, everything.filter((n) => n >= seen[0]!), 'live, then resumed after a restart: every event once, none missing')
  t.same(everything, [...everything].sort((a, b) => a - b), 'ids increase')

  const mine = all.events().filter((m) => m.data.buildId === id).map((m) => m.event)
  t.same(mine.slice(0, 2), ['build.queued', 'build.started'])
  t.equal(mine.at(-1), 'build.finished')
  const phases = all.events().filter((m) => m.data.buildId === id && m.event === 'build.phase').map((m) => m.data.build.phase)
  t.same(phases.filter((p) => ['shell', 'init', 'fetch', 'build', 'publishing'].includes(p)),
    ['shell', 'init', 'fetch', 'build', 'publishing'], `each step as it starts, then publishing: ${phases.join(', ')}`)
  t.ok(phases.some((p) => p.startsWith('osbuild')), 'the image step')

  const byStream = await open(server, '/v1/events?since=0&stream=other')
  await byStream.until('other\'s events', (m) => m.event === 'build.finished' && m.data.buildId === other)
  const byBuild = await open(server, `/v1/events?since=0&build=${id}`)
  await byBuild.until('the build\'s end', (m) => m.id === finished.id)
  await byBuild.until('a heartbeat', (m) => m.comment === 'heartbeat', 5000)
  byStream.close()
  byBuild.close()
  t.ok(byStream.events().every((m) => m.data.stream === 'other'), '?stream= keeps one stream')
  t.ok(byBuild.events().every((m) => m.data.buildId === id), '?build= keeps one build')
  t.same(byBuild.events().map((m) => m.event), mine, 'every event of the build')
})

t.test('EventSource\'s query token: minted, short-lived, for this route only', async (t) => {
  const dataDir = await tempDir(t, 'cosa-event-token-')
  const server = await startServer(t, dataDir, 1, { env })
  const minted = await fetch(`${server.url}/v1/event-tokens`, { method: 'POST', headers: { authorization: `Bearer ${READ}` } })
  t.equal(minted.status, 201)
  const { token, expiresAt } = await minted.json() as { token: string, expiresAt: string }
  const ttl = Date.parse(expiresAt) - Date.now()
  t.ok(ttl > 4 * 60_000 && ttl <= 5 * 60_000, `valid for 5 minutes (${ttl} ms)`)
  t.equal((await fetch(`${server.url}/v1/event-tokens`, { method: 'POST' })).status, 401, 'minting needs a token')

  const stream = await open(server, `/v1/events?token=${encodeURIComponent(token)}`, {})
  t.equal(stream.res.status, 200, 'the query token opens the event stream')
  await stream.until('retry', (m) => m.retry !== undefined)
  stream.close()

  const key = await readFile(join(dataDir, 'event-token-key'))
  const expires = Math.floor(Date.now() / 1000) - 1
  const expired = `evt1.${expires}.${createHmac('sha256', key).update(`evt1.${expires}`).digest('base64url')}`
  const status = async (path: string) => (await fetch(server.url + path)).status
  t.equal(await status(`/v1/events?token=${expired}`), 401, 'an expired token: 401')
  t.equal(await status(`/v1/events?token=${token.slice(0, -2)}xx`), 401, 'a forged token: 401')
  t.equal(await status(`/v1/events?token=${READ}`), 401, 'a long-lived token in a URL: 401')
  t.equal(await status(`/v1/events`), 401, 'no token: 401')
  t.equal(await status(`/v1/builds?token=${encodeURIComponent(token)}`), 401, 'another route does not take it')
  t.equal(await status(`/v1/events?since=x`), 401, 'auth comes before validation')
  t.equal((await fetch(`${server.url}/v1/events?since=x`, { headers: { authorization: `Bearer ${READ}` } })).status, 400)
  t.notMatch(server.output(), /evt1\./, 'no query token, good or forged, reaches the log')
  t.match(server.output(), /token=(%5B|\[)redacted/, 'the refused requests are logged, their token redacted')
})
