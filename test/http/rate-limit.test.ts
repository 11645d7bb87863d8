import t from 'tap'
import { ensureInertImage, INERT_IMAGE, startApp } from '../helpers.js'

await ensureInertImage()

// S5: submits are limited per token, with 429, Retry-After and the
// x-ratelimit-* headers; other tokens and other routes are not affected.

const SUBMIT_A = 'submit-token-a-0123456789'
const SUBMIT_B = 'submit-token-b-0123456789'
const ADMIN = 'admin-token-0123456789abc'

t.test('submits per token and minute', async (t) => {
  const h = await startApp(t, {
    tokens: { read: [], submit: [SUBMIT_A, SUBMIT_B], admin: [ADMIN] },
    http: { submitsPerMinute: 5 },
    builds: { maxConcurrent: 1, defaultImage: INERT_IMAGE }
  })
  const as = (token: string) => ({ authorization: `Bearer ${token}` })
  t.equal((await h.app.inject({ method: 'PUT', url: '/v1/streams/s', headers: as(ADMIN), payload: { config: { url: 'file:///nonexistent', ref: 'main' } } })).statusCode, 201)
  const submit = (token: string) => h.app.inject({ method: 'POST', url: '/v1/streams/s/builds', headers: as(token), payload: {} })

  const answers = []
  for (let i = 0; i < 8; i++) answers.push(await submit(SUBMIT_A))
  t.same(answers.map((r) => r.statusCode), [202, 202, 202, 202, 202, 429, 429, 429], 'exactly 3 of 8 over a limit of 5')
  t.equal(answers[0]!.headers['x-ratelimit-limit'], '5')
  t.equal(answers[4]!.headers['x-ratelimit-remaining'], '0')
  const limited = answers[5]!
  t.equal(limited.json().code, 'BLD_RATE_LIMITED')
  t.match(limited.json().message, /more than 5 submits a minute with this token: retry in \d+ s/)
  t.ok(Number(limited.headers['retry-after']) > 0 && Number(limited.headers['retry-after']) <= 60, `Retry-After ${limited.headers['retry-after']}`)
  t.equal((await submit(SUBMIT_B)).statusCode, 202, 'another token has its own budget')
  t.equal((await h.app.inject({ url: '/v1/builds', headers: as(SUBMIT_A) })).statusCode, 200, 'reads are not limited')
  const builds = (await h.app.inject({ url: '/v1/builds?limit=100', headers: as(ADMIN) })).json().builds
  t.equal(builds.length, 6, 'a refused submit made no build')
})

t.test('0 turns the limit off', async (t) => {
  const h = await startApp(t, { http: { submitsPerMinute: 0 }, builds: { maxConcurrent: 1, defaultImage: INERT_IMAGE } })
  await h.app.inject({ method: 'PUT', url: '/v1/streams/s', payload: { config: { url: 'file:///nonexistent', ref: 'main' } } })
  for (let i = 0; i < 150; i++) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/streams/s/builds', payload: {} })
    if (res.statusCode !== 202) return t.fail(`submit ${i}: ${res.statusCode}`)
  }
  t.pass('150 submits in a row')
})
