import t from 'tap'
import { startApp } from '../helpers.js'

const READ = 'read-token-0123456789'
const SUBMIT = 'submit-token-0123456789'
const ADMIN = 'admin-token-0123456789'

t.test('tokens: read < submit < admin, exactly 401 or 403', async (t) => {
  const { app } = await startApp(t, { tokens: { read: [READ], submit: [SUBMIT], admin: [ADMIN] } })
  const as = (token: string | undefined, method: string, url: string, payload?: object) =>
    app.inject({ method: method as 'GET', url, payload, headers: token === undefined ? {} : { authorization: token } })
  const stream = { config: { url: 'file:///nonexistent', ref: 'main' } }
  t.equal((await as(`Bearer ${ADMIN}`, 'PUT', '/v1/streams/s', stream)).statusCode, 201)

  const routes: Array<['read' | 'submit' | 'admin', string, string, object?]> = [
    ['read', 'GET', '/v1/streams'],
    ['read', 'GET', '/v1/streams/s'],
    ['read', 'GET', '/v1/builds'],
    ['submit', 'POST', '/v1/streams/s/builds', {}],
    ['admin', 'PUT', '/v1/streams/s', stream]
  ]
  const rank = { read: 1, submit: 2, admin: 3 } as const
  const tokens = { read: READ, submit: SUBMIT, admin: ADMIN } as const
  for (const [needed, method, url, payload] of routes) {
    t.equal((await as(undefined, method, url, payload)).statusCode, 401, `${method} ${url} without a token`)
    t.equal((await as('Bearer', method, url, payload)).statusCode, 401, `${method} ${url} malformed`)
    t.equal((await as('Basic abc', method, url, payload)).statusCode, 401, `${method} ${url} wrong scheme`)
    t.equal((await as('Bearer wrong-token-0123456789', method, url, payload)).statusCode, 401, `${method} ${url} unknown token`)
    for (const role of ['read', 'submit', 'admin'] as const) {
      const res = await as(`Bearer ${tokens[role]}`, method, url, payload)
      const expected = rank[role] >= rank[needed] ? [200, 201, 202] : [403]
      t.ok(expected.includes(res.statusCode), `${method} ${url} as ${role}: ${res.statusCode}`)
    }
  }
  t.equal((await as(undefined, 'GET', '/healthz')).statusCode, 200, 'health is public')
  const spec = (await as(undefined, 'GET', '/openapi.json')).json()
  t.equal(spec.components.securitySchemes.bearerAuth.scheme, 'bearer', 'the OpenAPI document is public')
})
