import { createHash } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { buildDashboard } from '../../scripts/build-dashboard.js'
import Fastify from 'fastify'
import { validatorCompiler } from 'fastify-type-provider-zod'
import { pathToFileURL } from 'node:url'
import dashboard, { CONTENT_SECURITY_POLICY } from '../../src/http/dashboard.js'
import { configRepo, requireDocker, ROOT, startApp, tempDir } from '../helpers.js'
import { floodScript, startServer, until, type Server } from '../server-process.js'

// The dashboard in a real browser (Debian's chromium, driven by
// playwright-core) against the real server and real cosa-lite builds.
// Screenshots of each page at two widths go to .screenshots/ (git-ignored);
// `npm run screenshots` copies them into docs/.

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium'
export const SCREENSHOTS = join(ROOT, '.screenshots')
const WIDTHS = [{ name: 'wide', width: 1280, height: 800 }, { name: 'phone', width: 390, height: 844 }] as const
const TOKENS = { read: 'read-token-0123456789', submit: 'submit-token-0123456789', admin: 'admin-token-0123456789' }
const FINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']
/** MAX_LINES of web/log-view.ts (browser code, not importable here). */
const MAX_LINES = 5000

/** Prints `ticks` bursts of 20 lines a second apart, then builds: a log that grows while it is watched. */
const chattyRecipe = (ticks: number) => [
  ['shell', '--', 'bash', '-c', `for i in $(seq 1 ${ticks}); do for j in $(seq 1 20); do echo "tick $i line $j"; done; sleep 1; done`],
  ['init', '--force', '--branch', '{ref}', '--commit', '{commit}', '{url}'],
  ['fetch'],
  ['build', '{build-flags}'],
  ['osbuild', '{platforms}']
]

/** Waits, then prints FLOOD_LINES lines in bursts: more than the log view may hold, arriving while it is open. */
const FLOOD_LINES = 12_000
const floodRecipe = [
  ['shell', '--', 'bash', '-c', `sleep 4; ${floodScript(FLOOD_LINES, { pauseEvery: 1000 })}`],
  ['init', '--force', '--branch', '{ref}', '--commit', '{commit}', '{url}'],
  ['build', '{build-flags}']
]

async function call (server: Server, path: string, init: { method?: string, body?: unknown, token?: string } = {}) {
  const res = await fetch(server.url + path, {
    method: init.method ?? 'GET',
    headers: {
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` })
    },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
  })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${init.method ?? 'GET'} ${path}: ${res.status} ${text}`)
  return JSON.parse(text)
}

const waitState = (server: Server, id: string, states: string[], token?: string) =>
  until(`build ${id} in ${states.join('/')}`, 180_000, async () => {
    const build = await call(server, `/v1/builds/${id}`, { token })
    return states.includes(build.state) ? build : undefined
  })

async function freePort () {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  return port
}

async function launch (t: Test): Promise<Browser> {
  // Root in a container has no user namespaces for chromium's sandbox.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  t.teardown(() => browser.close())
  return browser
}

/** A page that fails the test on a script error or a CSP violation. */
async function newPage (t: Test, browser: Browser, width: (typeof WIDTHS)[number] = WIDTHS[0]) {
  const context = await browser.newContext({ viewport: { width: width.width, height: width.height } })
  const page = await context.newPage()
  page.on('pageerror', (err) => t.fail(`page error: ${err.message}`))
  page.on('console', (msg) => { if (/Content Security Policy/i.test(msg.text())) t.fail(`CSP: ${msg.text()}`) })
  return page
}

async function screenshots (browser: Browser, t: Test, name: string, url: string, ready: (page: Page) => Promise<unknown>) {
  await mkdir(SCREENSHOTS, { recursive: true })
  for (const width of WIDTHS) {
    const page = await newPage(t, browser, width)
    await page.goto(url)
    await ready(page)
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${width.name}.png`), fullPage: width.name === 'phone' })
    await page.context().close()
  }
}

t.before(async () => { await buildDashboard() })

t.test('the pages and assets, the API beside them', async (t) => {
  const h = await startApp(t)
  for (const url of ['/', '/builds', '/builds/some-id', '/streams/some-stream', '/token']) {
    const res = await h.app.inject({ url })
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /^text\/html/)
    t.equal(res.headers['content-security-policy'], CONTENT_SECURITY_POLICY)
    t.match(res.body, '<script type="module" src="/assets/app.js">')
  }
  const js = await h.app.inject({ url: '/assets/app.js' })
  t.equal(js.statusCode, 200)
  t.match(js.headers['content-type'], /^text\/javascript/)
  t.equal((await h.app.inject({ url: '/assets/other.js' })).statusCode, 400, 'only the bundle\'s files')
  t.equal((await h.app.inject({ url: '/docs/' })).statusCode, 200, '/docs stays')
  const paths = Object.keys((await h.app.inject({ url: '/openapi.json' })).json().paths)
  t.same(paths.filter((p) => ['/', '/token', '/builds', '/builds/{id}', '/streams/{stream}', '/assets/{file}'].includes(p)), [],
    'the OpenAPI document describes the API alone')

  // A checkout that was never built says what to run.
  const bare = Fastify()
  bare.setValidatorCompiler(validatorCompiler)
  await bare.register(dashboard, { bundle: pathToFileURL(await tempDir(t) + '/') })
  const missing = await bare.inject({ url: '/assets/app.js' })
  t.equal(missing.statusCode, 503)
  t.match(missing.body, 'npm run build:dashboard')
  await bare.close()
})

t.test('without tokens: streams, live builds, the log, failures and downloads', async (t) => {
  if (!(await requireDocker(t))) return
  const server = await startServer(t, await tempDir(t), 2)
  const repo = await configRepo(t)
  await call(server, '/v1/streams/demo', { method: 'PUT', body: { config: { url: repo.url, ref: 'main' } } })
  await call(server, '/v1/streams/broken', {
    method: 'PUT',
    body: { config: { url: repo.url, ref: 'main' }, recipe: [['init', '--force', '--branch', '{ref}', '--commit', '{commit}', '{url}'], ['shell', '--', 'bash', '-c', 'echo about to fail; exit 3'], ['build', '{build-flags}']] }
  })
  await call(server, '/v1/streams/chatty', { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe: chattyRecipe(12) } })
  await call(server, '/v1/streams/flood', { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe: floodRecipe } })
  const browser = await launch(t)

  const shell = await fetch(server.url + '/')
  t.equal(shell.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY, 'the pages carry the strict CSP')
  t.equal((await fetch(server.url + '/v1/nothing')).status, 404, 'the JSON API\'s 404s are unchanged')

  // The stream list, with no token prompt.
  const streams = await newPage(t, browser)
  await streams.goto(server.url + '/')
  await streams.locator('tr[data-stream="demo"]').waitFor()
  t.same((await streams.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-stream')))).sort(), ['broken', 'chatty', 'demo', 'flood'])
  t.equal(await streams.getByText('A token is needed').count(), 0, 'no token prompt when the server has no tokens')
  await streams.getByLabel('Filter by name').fill('dem')
  t.equal(await streams.locator('tbody tr').count(), 1, 'filtering by name')
  await streams.getByLabel('Filter by name').fill('')

  // A build submitted through the API appears and succeeds without a reload.
  const list = await newPage(t, browser)
  await list.goto(server.url + '/builds')
  await list.getByText('No builds yet.').waitFor()
  const chatty = await call(server, '/v1/streams/chatty/builds', { method: 'POST', body: {} })
  const flood = await call(server, '/v1/streams/flood/builds', { method: 'POST', body: {} })
  const floodPage = await newPage(t, browser)
  await floodPage.goto(`${server.url}/builds/${flood.id}`)
  const row = list.locator(`tr[data-build="${chatty.id}"]`)
  await row.waitFor({ timeout: 10_000 })
  // Driven by the event stream: the list never asks for the build itself.
  const asked = { build: 0, list: 0 }
  list.on('request', (r) => {
    const { pathname } = new URL(r.url())
    if (pathname === `/v1/builds/${chatty.id}`) asked.build++
    else if (pathname === '/v1/builds') asked.list++
  })
  await list.locator(`tr[data-build="${chatty.id}"][data-state="running"] td[data-label="Detail"]`, { hasText: /\S/ }).waitFor({ timeout: 60_000 })
  t.pass('the list shows the phase of a running build')

  // Its log follows while at the bottom and stops when scrolled up.
  await waitState(server, chatty.id, ['running'])
  const page = await newPage(t, browser)
  await page.goto(`${server.url}/builds/${chatty.id}`)
  await page.locator('.timeline li.running').waitFor({ timeout: 10_000 })
  t.equal(await page.locator('.timeline li.running').count(), 1, 'the phase it is in shows while it runs')
  const log = page.getByRole('log', { name: 'build log' })
  await page.locator('.log .line', { hasText: 'tick 3 line 20' }).waitFor({ timeout: 30_000 })
  t.equal(await log.getAttribute('data-follow'), 'following', 'follows a running build')
  const atBottom = () => log.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 8)
  t.ok(await atBottom(), 'sits at the bottom while following')
  await mkdir(SCREENSHOTS, { recursive: true })
  await page.screenshot({ path: join(SCREENSHOTS, 'build-running-wide.png') })
  await log.evaluate((el) => { el.scrollTop = 0 })
  await until('paused', 5000, async () => (await log.getAttribute('data-follow')) === 'paused')
  const lines = await page.locator('.log .line').count()
  await until('more lines', 15_000, async () => (await page.locator('.log .line').count()) > lines + 20)
  t.equal(await log.evaluate((el) => el.scrollTop), 0, 'scrolled up, the view stays where the reader put it')
  await page.getByRole('button', { name: 'Jump to the end' }).click()
  await until('following again', 5000, async () => (await log.getAttribute('data-follow')) === 'following')
  await log.locator('details.step > summary', { hasText: '==> cosa build' }).waitFor({ timeout: 120_000 })
  await until('the log to end', 120_000, async () => (await log.getAttribute('data-follow')) === 'ended')
  await page.locator('h1', { hasText: /^Succeeded in (\d+m )?\d+s$/ }).waitFor({ timeout: 10_000 })
  t.pass('the header says how it ended and how long it took')
  await row.and(list.locator('[data-state="succeeded"]')).waitFor({ timeout: 10_000 })
  t.pass('the list showed the build succeed without a reload')
  t.comment(`while it ran the list page asked: ${JSON.stringify(asked)}`)
  t.equal(asked.build, 0, 'no poll of the build: its changes came from the event stream')
  t.ok(asked.list <= 6, `a refresh of the list only for events that move the queue (${asked.list})`)
  const phases = await page.locator('.timeline li').evaluateAll((items) => items.map((li) => li.getAttribute('data-phase')))
  t.same(phases.slice(0, 5), ['preparing', 'shell', 'init', 'fetch', 'build'], `the build's phases in order: ${phases.join(', ')}`)
  t.equal(phases.at(-1), 'publishing')
  t.equal(await page.locator('.timeline li.running').count(), 0, 'none runs once it ended')

  // A log larger than the view may hold: the oldest lines leave the page, and come back on demand.
  await waitState(server, flood.id, FINAL)
  await floodPage.locator('[data-follow="ended"]').first().waitFor({ timeout: 30_000 })
  const held = await floodPage.locator('.log .line').count()
  t.comment(`the page holds ${held} lines of a ${FLOOD_LINES}-line log`)
  t.ok(held <= MAX_LINES && held > 1000, `the page holds ${held} of the log's ${FLOOD_LINES}+ lines`)
  t.ok(await floodPage.locator('.log .line', { hasText: `line ${FLOOD_LINES} ` }).count(), 'down to the last line')
  await floodPage.getByRole('button', { name: /^Load earlier/ }).click()
  await until('earlier lines', 10_000, async () => (await floodPage.locator('.log .line').count()) > held)

  // Older pages by the API's cursor.
  await list.goto(server.url + '/builds?limit=1')
  await list.locator('tr[data-build]').first().waitFor()
  t.equal(await list.locator('tr[data-build]').count(), 1)
  await list.getByRole('button', { name: 'Older builds' }).click()
  await until('the next page', 10_000, async () => (await list.locator('tr[data-build]').count()) === 2)

  // Downloads give the published bytes.
  const built = await call(server, `/v1/builds/${chatty.id}`)
  for (const artifact of built.result.artifacts) {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(`tr[data-artifact="${artifact.name}"] a`).click()
    ])
    const bytes = await readFile((await download.path())!)
    t.equal(createHash('sha256').update(bytes).digest('hex'), artifact.sha256, `the ${artifact.name} download has the published bytes`)
  }
  await page.getByText('meta.json').click()
  await page.locator('.meta pre', { hasText: built.result.ostreeCommit }).waitFor()

  // A failed build shows its failure.
  const broken = await call(server, '/v1/streams/broken/builds', { method: 'POST', body: {} })
  const failed = await waitState(server, broken.id, FINAL)
  t.equal(failed.state, 'failed')
  await page.goto(`${server.url}/builds/${broken.id}`)
  await page.getByRole('alert').filter({ hasText: 'exit_code' }).waitFor()
  await page.locator('h1', { hasText: /^Failed in / }).waitFor()
  t.equal(failed.failedStep, 'shell', 'the server names the step')
  t.match(await page.getByRole('alert').textContent(), 'in step shell', 'names the failed step')
  await page.locator('.timeline li.failed[data-phase="shell"]', { hasText: 'failed here' }).waitFor()
  await page.locator('.log details.failed-step > summary', { hasText: 'echo about to fail' }).waitFor()
  await page.goto(`${server.url}/builds/${chatty.id}`)
  await page.locator('[data-follow="ended"]').first().waitFor()
  t.ok(await log.evaluate((el) => el.scrollHeight > el.clientHeight), 'a log longer than its box')
  t.ok(await atBottom(), 'a finished build\'s log opens at its end')
  t.pass('the log marks the step the build failed in')

  await streams.locator('tr.failed-last[data-stream="broken"]').waitFor({ timeout: 10_000 })
  t.match(await streams.locator('tr[data-stream="broken"]').textContent(), /last build failed/, 'a failed stream says so in words')

  await screenshots(browser, t, 'streams', server.url + '/', (p) => p.locator('tr[data-stream="demo"] td').first().waitFor())
  await screenshots(browser, t, 'builds', server.url + '/builds', (p) => p.locator('tr[data-build]').first().waitFor())
  await screenshots(browser, t, 'stream', server.url + '/streams/chatty', (p) => p.locator(`tr[data-build="${chatty.id}"]`).waitFor())
  await screenshots(browser, t, 'build-succeeded', `${server.url}/builds/${chatty.id}`, (p) => p.locator('[data-follow="ended"]').first().waitFor())
  await screenshots(browser, t, 'build-failed', `${server.url}/builds/${broken.id}`, (p) => p.locator('[data-follow="ended"]').first().waitFor())
})

t.test('with tokens: the token page, buttons by role, and catching up after the connection drops', async (t) => {
  if (!(await requireDocker(t))) return
  // A fixed port, so that the page reconnects to the same address after a restart.
  const env = {
    COSA_BUILDD_READ_TOKENS: TOKENS.read, COSA_BUILDD_SUBMIT_TOKENS: TOKENS.submit, COSA_BUILDD_ADMIN_TOKENS: TOKENS.admin,
    COSA_BUILDD_PORT: String(await freePort()),
    // Shorter than the margin at which the page mints a new one: every reconnect needs a fresh token.
    COSA_BUILDD_EVENT_TOKEN_TTL_SECONDS: '10'
  }
  const dataDir = await tempDir(t)
  let server = await startServer(t, dataDir, 1, { env })
  const repo = await configRepo(t)
  await call(server, '/v1/streams/slow', { method: 'PUT', token: TOKENS.admin, body: { config: { url: repo.url, ref: 'main' }, recipe: chattyRecipe(120) } })
  const build = await call(server, '/v1/streams/slow/builds', { method: 'POST', token: TOKENS.submit, body: {} })
  const next = await call(server, '/v1/streams/slow/builds', { method: 'POST', token: TOKENS.submit, body: {} })
  t.teardown(async () => {
    for (const b of [build, next]) await call(server, `/v1/builds/${b.id}/cancel`, { method: 'POST', token: TOKENS.submit }).catch(() => undefined)
  })
  const browser = await launch(t)
  const page = await newPage(t, browser)
  const urls: string[] = []
  page.on('request', (r) => urls.push(r.url()))
  // What the page's API calls did, printed if the page does not catch up.
  const trace: string[] = []
  const started = Date.now()
  const note = (what: string, url: string) => { if (url.includes('/v1/')) trace.push(`${Date.now() - started}ms ${what} ${url.replace(/token=[^&]+/, 'token=…')}`) }
  page.on('request', (r) => note(r.method(), r.url()))
  page.on('response', (r) => note(String(r.status()), r.url()))
  page.on('requestfailed', (r) => note(`failed (${r.failure()?.errorText ?? '?'})`, r.url()))
  page.on('requestfinished', (r) => note('finished', r.url()))
  page.on('console', (m) => trace.push(`${Date.now() - started}ms console.${m.type()} ${m.text()}`))

  await page.goto(`${server.url}/builds/${build.id}`)
  await page.getByRole('link', { name: 'Paste one' }).click()
  await page.getByLabel('Token').fill(TOKENS.read)
  await page.getByRole('button', { name: 'Use this token' }).click()
  await page.waitForURL(`${server.url}/builds/${build.id}`)
  await page.locator('.subtitle code', { hasText: build.id }).waitFor()
  await page.locator('.log .line').first().waitFor()
  t.equal(await page.getByRole('button', { name: 'Cancel build' }).count(), 0, 'a read token sees no cancel button')
  await screenshots(browser, t, 'token', server.url + '/token', (p) => p.getByLabel('Token').waitFor())

  await page.evaluate((token) => sessionStorage.setItem('cosa-buildd.token', token), TOKENS.submit)
  await page.reload()
  await page.getByRole('button', { name: 'Cancel build' }).waitFor()
  t.pass('a submit token sees the cancel button')
  // The timeline is drawn from the event stream's replay: once it shows, the
  // page has seen an event to resume from (on 2 busy cores the cut below came
  // before the replay did, and the page rightly reopened from seq 0).
  await page.locator('.timeline li').first().waitFor({ timeout: 30_000 })

  // The event stream drops (the server restarts, ending it) and stays cut
  // off while the build ends; once back, the page resumes from the last
  // event it saw and shows the end.
  const events = (url: URL) => url.pathname === '/v1/events'
  await page.route(events, (route) => route.abort())
  server.child.kill('SIGTERM')
  await server.exited
  await page.getByRole('status').filter({ hasText: 'reconnecting' }).waitFor({ timeout: 10_000 })
  server = await startServer(t, dataDir, 1, { env })
  // The server ends a log follow when it shuts down; the page resumes it
  // rather than calling the log of a running build complete.
  await page.locator('[data-follow="following"]').first().waitFor({ timeout: 15_000 })
  t.equal((await call(server, `/v1/builds/${build.id}`, { token: TOKENS.read })).state, 'running', 'the build runs on')
  await call(server, `/v1/builds/${build.id}/cancel`, { method: 'POST', token: TOKENS.submit })
  const ended = await waitState(server, build.id, FINAL, TOKENS.read)
  trace.push(`ended as ${JSON.stringify(ended)}`)
  t.equal(ended.state, 'cancelled', 'the build is cancelled')
  t.equal(await page.locator('h1', { hasText: /^Cancelled/ }).count(), 0, 'cut off, the page has not heard of it')
  await page.unroute(events)
  // Alone this takes a few seconds (a reopen every 3 s, a fresh token, the
  // missed events); in the full suite on 2 cores it went past 15 s twice.
  trace.push(`${Date.now() - started}ms unrouted`)
  await page.locator('h1', { hasText: /^Cancelled/ }).waitFor({ timeout: 40_000 })
    .catch(async (error: unknown) => { t.comment(trace.slice(-200).join('\n') + '\nh1: ' + await page.locator('h1').first().textContent()); throw error })
  // The events missed, not just the state: build.finished closes the running phase of the timeline.
  await page.locator('.timeline li.running').waitFor({ state: 'detached', timeout: 5000 })
  await page.locator('[data-follow="ended"]').first().waitFor({ timeout: 15_000 })
  t.pass('the state change made while the stream was down shows once it is back, and the log completes')
  t.ok(urls.some((u) => /\/v1\/events\?.*token=evt1\./.test(u)), 'the event stream is opened with a minted token')
  t.ok(urls.some((u) => /\/v1\/events\?.*since=[1-9]\d*&token=evt1\./.test(u)), 'reopened with a fresh token from the last event seen')
  t.notOk(urls.some((u) => Object.values(TOKENS).some((token) => u.includes(token))), 'no long-lived token in any URL')

  await page.goto(`${server.url}/builds/${next.id}`)
  await page.getByRole('button', { name: 'Cancel build' }).click()
  await page.locator('h1', { hasText: /^Cancelled/ }).waitFor({ timeout: 60_000 })
  t.equal((await waitState(server, next.id, FINAL, TOKENS.read)).state, 'cancelled', 'a submit token cancels from the page')
})
