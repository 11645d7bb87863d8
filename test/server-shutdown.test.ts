import { execa } from 'execa'
import { Agent, get, type IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import { configRepo, instanceOwner, reapOwned, requireDocker, tempDir } from './helpers.js'
import { api, sleep, startServer, tickRecipe, until, type Server } from './server-process.js'

// R12 (reliability plan): SIGTERM while requests are in flight and builds
// run. In-flight requests complete, new ones get 503 or a refused
// connection, the process exits 0 promptly, and the builds keep running for
// the next start to adopt and finish.

const TERMINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']
const EXIT_BUDGET_MS = 10_000
/** Like sleep, without keeping the test process alive. */
const after = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms).unref())

const containerStates = async (buildId: string) =>
  (await execa('docker', ['ps', '-a', '--filter', `label=io.cosa-buildd.build-id=${buildId}`, '--format', '{{.State}}']))
    .stdout.split('\n').filter(Boolean)

/** Registers one slow stream per name and submits a build to each; waits until every container logs `tick 2`. */
async function runningBuilds (t: Test, server: Server, names: string[], ticks: number) {
  const repo = await configRepo(t)
  const ids: string[] = []
  for (const name of names) {
    const reg = await api(server, `/v1/streams/${name}`, {
      method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe: tickRecipe(ticks) }
    })
    if (reg.status >= 300) throw new Error(`register ${name}: ${reg.status} ${reg.text}`)
    const sub = await api(server, `/v1/streams/${name}/builds`, { method: 'POST', body: {} })
    if (sub.status !== 202) throw new Error(`submit ${name}: ${sub.status} ${sub.text}`)
    ids.push(sub.json().id)
  }
  await until('every build to run and log "tick 2"', 5 * 60_000, async () => {
    for (const id of ids) {
      const b = (await api(server, `/v1/builds/${id}`)).json()
      if (TERMINAL.includes(b.state)) throw new Error(`build ${id} ended early: ${b.state} ${b.message ?? ''}`)
      if (!b.containerId || !/^tick 2$/m.test((await api(server, `/v1/builds/${id}/log`)).text)) return false
    }
    return true
  })
  return ids
}

/** After a restart: every build ends, and no tick or service line was written twice. */
async function finishAfterRestart (t: Test, server: Server, ids: string[], ticks: number) {
  const finals = await until('every build to end after the restart', 8 * 60_000, async () => {
    const builds = await Promise.all(ids.map(async (id) => (await api(server, `/v1/builds/${id}`)).json()))
    return builds.every((b) => TERMINAL.includes(b.state)) && builds
  })
  for (const b of finals) t.equal(b.state, 'succeeded', `build ${b.id} (${b.stream}) adopted and completed: ${b.message ?? ''}`)
  for (const id of ids) {
    const lines = (await api(server, `/v1/builds/${id}/log`)).text.split('\n')
    const counts = Array.from({ length: ticks }, (_, i) => lines.filter((l) => l === `tick ${i + 1}`).length)
    t.same(counts, Array(ticks).fill(1), `build ${id}: each tick appears exactly once`)
    const steps = lines.filter((l) => l.startsWith('==> '))
    t.same(steps.filter((l, i) => steps.indexOf(l) !== i), [], `build ${id}: no service or step line repeated`)
  }
  for (const id of ids) {
    const left = await until(`build ${id}'s container to be removed`, 30_000, async () =>
      (await containerStates(id)).length === 0 ? [] : false).catch(() => containerStates(id))
    t.same(left, [], `build ${id}: its container is removed`)
  }
  return finals
}

interface Outcome {
  path: string
  /** On a keep-alive socket that had already served a request. */
  reused: boolean
  status?: number
  /** The whole body arrived (content-length matched, JSON parsed). */
  complete: boolean
  /** The request or response failed: ECONNREFUSED, ECONNRESET... */
  error?: string
  body?: string
  doneAt: number
}

/** One GET over node:http, recording exactly how it ended. */
function send (base: string, path: string, agent: Agent | false) {
  const outcome: Outcome = { path, reused: false, complete: false, doneAt: 0 }
  let markWritten!: () => void
  const written = new Promise<void>((resolve) => { markWritten = resolve })
  const done = new Promise<Outcome>((resolve) => {
    const finish = (patch: Partial<Outcome>) => {
      if (outcome.doneAt) return
      Object.assign(outcome, patch, { doneAt: Date.now() })
      markWritten()
      resolve(outcome)
    }
    const req = get(base + path, { agent }, (res: IncomingMessage) => {
      outcome.status = res.statusCode
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        const length = res.headers['content-length']
        let complete = res.complete && (length === undefined || Number(length) === Buffer.byteLength(body))
        if (complete && /json/.test(res.headers['content-type'] ?? '')) {
          try { JSON.parse(body) } catch { complete = false }
        }
        finish({ complete, body })
      })
      res.on('error', (err: NodeJS.ErrnoException) => finish({ error: `response: ${err.code ?? err.message}` }))
      res.on('close', () => { if (!res.complete) finish({ error: 'response: closed before its end' }) })
    })
    req.on('finish', () => { outcome.reused = req.reusedSocket; markWritten() })
    req.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }))
  })
  return { written, done }
}

const tally = (outcomes: Outcome[]) => {
  const counts: Record<string, number> = {}
  for (const o of outcomes) {
    const key = o.error ?? `${o.status}${o.complete ? '' : ' (incomplete)'}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

t.test('SIGTERM during 200 in-flight requests and 5 running builds', { timeout: 10 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const TICKS = 20
  const dataDir = await tempDir(t, 'cosa-r12-')
  reapOwned(t, instanceOwner(dataDir))
  let server = await startServer(t, dataDir, 5)
  const ids = await runningBuilds(t, server, ['s0', 's1', 's2', 's3', 's4'], TICKS)

  // Connections the server has accepted: a request written on one of them
  // before SIGTERM is in flight, whatever the server has done with it yet.
  const agent = new Agent({ keepAlive: true, maxSockets: 200, maxFreeSockets: 200 })
  t.teardown(() => agent.destroy())
  const warm = await Promise.all(Array.from({ length: 200 }, () => send(server.url, '/healthz', agent).done))
  t.same(tally(warm), { 200: 200 }, 'warm-up: 200 connections answered')

  // Requests begun before SIGTERM on raw sockets (headers not finished) and
  // completed after it: such a connection is busy, so the shutdown does not
  // close it as idle, and its request is a new one.
  const late: Promise<string>[] = []
  const rawSockets = await Promise.all(Array.from({ length: 3 }, async () => {
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1')
    let text = ''
    socket.on('data', (d) => { text += d })
    late.push(new Promise((resolve) => {
      socket.on('close', () => resolve(text))
      socket.on('error', (err: NodeJS.ErrnoException) => { text = `error ${err.code}` })
    }))
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    return socket
  }))
  await sleep(500)

  const paths = Array.from({ length: 200 }, (_, i) =>
    [`/v1/builds/${ids[i % ids.length]}`, '/v1/streams', '/healthz'][i % 3]!)
  const burst = paths.map((p) => send(server.url, p, agent))
  await Promise.all(burst.map((r) => r.written))
  const termAt = Date.now()
  server.child.kill('SIGTERM')
  const outcomes = await Promise.all(burst.map((r) => r.done))
  const inFlightAtTerm = outcomes.filter((o) => o.doneAt >= termAt).length
  const answeredBeforeTerm = outcomes.length - inFlightAtTerm
  t.comment(`R12 burst: 200 requests written on accepted connections before SIGTERM; ${answeredBeforeTerm} answered ` +
    `before it, ${inFlightAtTerm} still in flight; outcomes ${JSON.stringify(tally(outcomes))}; ` +
    `reused sockets ${outcomes.filter((o) => o.reused).length}`)
  t.ok(inFlightAtTerm > 0, `requests were in flight at SIGTERM (${inFlightAtTerm})`)
  const bad = outcomes.filter((o) => o.status !== 200 || !o.complete || o.error)
  t.same(bad.map((o) => `${o.path}: ${o.error ?? o.status}${o.complete ? '' : ' incomplete'}`), [],
    'every request in flight at SIGTERM got a complete 200, none was reset')

  // New requests once the process says it is shutting down.
  await until('the shutdown log line', 20_000, async () => /shutting down/.test(server.output()))
  for (const s of rawSockets) s.write('\r\n')
  const sentAfter: Outcome[] = []
  let exitedAt = 0
  void server.exited.then(() => { exitedAt = Date.now() })
  const postDeadline = Date.now() + EXIT_BUDGET_MS + 5000
  while (!exitedAt && Date.now() < postDeadline) {
    sentAfter.push(await send(server.url, ['/healthz', '/v1/streams', `/v1/builds/${ids[0]}`][sentAfter.length % 3]!, false).done)
    await sleep(25)
  }
  // One more once it is gone: refused.
  sentAfter.push(await send(server.url, '/healthz', false).done)
  const lateAnswers = await Promise.all(late)
  const lateStatus = lateAnswers.map((a) => /^HTTP\/1\.1 (\d+)/.exec(a)?.[1] ?? a.split('\n')[0] ?? '(nothing)')
  t.comment(`R12 after SIGTERM: ${sentAfter.length} new connections: ${JSON.stringify(tally(sentAfter))}; ` +
    `requests completed on busy connections: ${JSON.stringify(lateStatus)}`)
  const wrong = sentAfter.filter((o) => !(o.error === 'ECONNREFUSED' || (o.status === 503 && o.complete)))
  t.same(wrong.map((o) => `${o.path}: ${o.error ?? o.status}`), [], 'every request sent after SIGTERM got 503 or a refused connection')
  for (const s of lateStatus) t.ok(s === '503' || s === 'error ECONNREFUSED', `a request completed after SIGTERM: ${s}`)

  const code = await Promise.race([server.exited, after(60_000, 'still running')])
  const exitMs = (exitedAt || Date.now()) - termAt
  t.comment(`R12 shutdown: exit code ${code} ${exitMs} ms after SIGTERM`)
  t.equal(code, 0, 'the process exits 0')
  t.ok(exitMs <= EXIT_BUDGET_MS, `it exits within ${EXIT_BUDGET_MS} ms (${exitMs} ms)`)
  t.match(server.output(), /shutting down; running builds keep running/)

  for (const id of ids) t.same(await containerStates(id), ['running'], `build ${id}: its container still runs after the exit`)

  server = await startServer(t, dataDir, 5)
  await finishAfterRestart(t, server, ids, TICKS)
})

t.test('SIGTERM with log followers open: they end and do not hold the shutdown', { timeout: 10 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const TICKS = 40
  const dataDir = await tempDir(t, 'cosa-r12f-')
  reapOwned(t, instanceOwner(dataDir))
  let server = await startServer(t, dataDir, 2)
  const ids = await runningBuilds(t, server, ['f0', 'f1'], TICKS)

  // Two followers per build, from the start of the log.
  const followers = ids.flatMap((id) => [0, 1].map(() => {
    const ctl = new AbortController()
    const state = { id, text: '', ended: false, error: '', at: 0 }
    const reading = fetch(`${server.url}/v1/builds/${id}/log?follow=true`, { signal: ctl.signal })
      .then(async (res) => {
        for await (const chunk of res.body!) state.text += Buffer.from(chunk).toString('utf8')
        state.ended = true
      })
      .catch((err: Error & { cause?: { code?: string } }) => { state.error = err.cause?.code ?? err.name })
      .finally(() => { state.at = Date.now() })
    return { state, reading, abort: () => ctl.abort() }
  }))
  await until('the followers to receive tick 2', 60_000, async () => followers.every((f) => /^tick 2$/m.test(f.state.text)))

  const termAt = Date.now()
  server.child.kill('SIGTERM')
  const outcome = await Promise.race([
    server.exited.then((code) => ({ code })),
    after(EXIT_BUDGET_MS + 5000, undefined)
  ])
  const stoppedMs = Date.now() - termAt
  const summary = followers.map((f) => f.state.ended
    ? `ended after ${f.state.at - termAt} ms`
    : f.state.error ? `failed (${f.state.error}) after ${f.state.at - termAt} ms` : 'still open')
  t.comment(`R12 followers at SIGTERM: process ${outcome ? `exited ${outcome.code} after ${stoppedMs} ms` : `still running after ${stoppedMs} ms`}; ` +
    `followers: ${summary.join(', ')}`)
  t.ok(outcome, `the process exits within ${EXIT_BUDGET_MS + 5000} ms of SIGTERM with followers open`)
  for (const f of followers) {
    t.ok(f.state.ended && f.state.at - termAt <= EXIT_BUDGET_MS, `a follower of ${f.state.id} ends cleanly at the shutdown: ${summary[followers.indexOf(f)]}`)
  }

  if (!outcome) {
    // What holds it: close the followers from this side and watch the process go.
    const abortAt = Date.now()
    for (const f of followers) f.abort()
    const code = await Promise.race([server.exited, after(30_000, 'still running')])
    t.comment(`R12 followers: after the clients closed them, the process exited ${code} in ${Date.now() - abortAt} ms`)
    t.equal(code, 0, 'the process exits 0 once the followers are gone')
  } else {
    t.equal(outcome.code, 0, 'the process exits 0')
  }
  await Promise.all(followers.map((f) => f.reading))
  for (const f of followers) {
    const lines = f.state.text.split('\n')
    const dup = lines.filter((l, i) => /^tick \d+$/.test(l) && lines.indexOf(l) !== i)
    t.same(dup, [], `a follower of ${f.state.id} saw no tick twice`)
  }

  for (const id of ids) t.same(await containerStates(id), ['running'], `build ${id}: its container still runs after the exit`)
  server = await startServer(t, dataDir, 2)
  await finishAfterRestart(t, server, ids, TICKS)
})
