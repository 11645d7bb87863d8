import { readFile } from 'node:fs/promises'
import t from 'tap'
import { openapiDocument } from '../../scripts/openapi-document.js'
import { startApp } from '../helpers.js'

t.test('api/openapi.json is the document the server serves', async (t) => {
  const committed = JSON.parse(await readFile(new URL('../../api/openapi.json', import.meta.url), 'utf8'))
  t.same(await openapiDocument(), committed, 'run `npm run openapi` after changing a route')
  const { app } = await startApp(t)
  const served = (await app.inject({ url: '/openapi.json' })).json()
  t.same(served, committed)
  const docs = await app.inject({ url: '/docs/' })
  t.equal(docs.statusCode, 200, 'the docs UI is served')
  t.match(docs.headers['content-type'], /text\/html/)
  const routes = app.printRoutes({ commonPrefix: false })
  for (const path of Object.keys(committed.paths)) {
    const fastifyPath = path.replace(/\{(\w+)\}/g, ':$1').replace(/^\//, '')
    t.ok(routes.includes(fastifyPath.split('/').pop()!), `${path} is a real route`)
  }
  t.equal(committed.paths['/v1/builds/{id}/log'].get.responses['200'].content['text/plain'].schema.type, 'string')
})
