import t from 'tap'
import { startApp } from '../helpers.js'

// Answers are counted by route template; those no route took (the
// not-found handler's 404 and 405) under "(unmatched)", by a hook of the
// not-found handler alone, not one every request runs.

const count = (text: string, labels: string) =>
  Number(new RegExp(`^cosa_buildd_http_request_duration_seconds_count\\{${labels.replace(/[()/]/g, '\\$&')}\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)

t.test('answers no route took are counted as (unmatched); route answers by template', async (t) => {
  const h = await startApp(t)
  for (let i = 0; i < 3; i++) t.equal((await h.app.inject({ url: `/nowhere/${i}` })).statusCode, 404)
  t.equal((await h.app.inject({ method: 'DELETE', url: '/v1/builds' })).statusCode, 405)
  for (let i = 0; i < 2; i++) t.equal((await h.app.inject({ url: `/v1/builds/nope-${i}` })).statusCode, 404)
  const text = (await h.app.inject({ url: '/metrics' })).body
  t.equal(count(text, 'method="GET",route="(unmatched)",status="404"'), 3, 'three 404s of no route')
  t.equal(count(text, 'method="DELETE",route="(unmatched)",status="405"'), 1, 'a 405')
  t.equal(count(text, 'method="GET",route="/v1/builds/:id",status="404"'), 2, 'a route\'s own 404s under its template')
  t.notMatch(text, /nope-0|nowhere/, 'no path is a label')
})
