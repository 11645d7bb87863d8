import t from 'tap'
import { startApp } from '../helpers.js'

// GET /v1/whoami: what the caller's token may do (the dashboard's buttons).

const TOKENS = { read: 'read-token-0123456789', submit: 'submit-token-0123456789', admin: 'admin-token-0123456789' }

t.test('each token gets its highest rank; no token or an event token is refused', async (t) => {
  const both = 'submit-and-admin-0123456789'
  const { app } = await startApp(t, { tokens: { read: [TOKENS.read], submit: [TOKENS.submit, both], admin: [TOKENS.admin, both] } })
  for (const [token, role] of [[TOKENS.read, 'read'], [TOKENS.submit, 'submit'], [TOKENS.admin, 'admin'], [both, 'admin']] as const) {
    const res = await app.inject({ url: '/v1/whoami', headers: { authorization: `Bearer ${token}` } })
    t.equal(res.statusCode, 200, role)
    t.same(res.json(), { role }, `${token} is ${role}`)
    t.equal(res.headers['cache-control'], 'no-store')
  }
  t.equal((await app.inject({ url: '/v1/whoami' })).statusCode, 401, 'no token')
  t.equal((await app.inject({ url: '/v1/whoami', headers: { authorization: 'Bearer wrong-token-0123456789' } })).statusCode, 401, 'an unknown token')
  const minted = (await app.inject({ method: 'POST', url: '/v1/event-tokens', headers: { authorization: `Bearer ${TOKENS.read}` } })).json()
  t.equal((await app.inject({ url: `/v1/whoami?token=${encodeURIComponent(minted.token)}` })).statusCode, 401, 'an event token is for /v1/events alone')
})

t.test('a server without tokens is open to every caller', async (t) => {
  const { app } = await startApp(t)
  const res = await app.inject({ url: '/v1/whoami' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { role: 'open' })
})
