import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { configRepo, requireDocker, tempDir } from '../helpers.js'
import { PG_PASSWORD, startPostgres } from '../postgres-server.js'
import { api, startServer, until } from '../server-process.js'

// End to end on PostgreSQL: the real server process, its state in a real
// PostgreSQL 15, builds the minimal example in a real container
// (cosa-lite:latest); the same build again is `unchanged`. Logs are in the
// database too.

const TERMINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']

t.test('the server on PostgreSQL builds the minimal example, then finds nothing new', { timeout: 15 * 60_000 }, async (t) => {
  if (!await requireDocker(t)) return
  const pg = await startPostgres(t)
  const url = await pg.createDatabase('service')
  const dataDir = await tempDir(t, 'cosa-pg-')
  const repo = await configRepo(t)
  const server = await startServer(t, dataDir, 1, { env: { COSA_BUILDD_DATABASE_URL: url } })

  const reg = await api(server, '/v1/streams/minimal', { method: 'PUT', body: { config: { url: repo.url, ref: 'main' } } })
  t.ok(reg.status < 300, `register: ${reg.status < 300 ? reg.status : reg.text}`)
  const build = async () => {
    const sub = await api(server, '/v1/streams/minimal/builds', { method: 'POST', body: {} })
    t.equal(sub.status, 202, `submit: ${sub.status === 202 ? 'accepted' : sub.text}`)
    const id = sub.json().id as string
    return until(`build ${id} to finish`, 10 * 60_000, async () => {
      const b = (await api(server, `/v1/builds/${id}`)).json()
      return TERMINAL.includes(b.state) && b
    })
  }
  const first = await build()
  t.equal(first.state, 'succeeded', `the first build: ${first.state === 'succeeded' ? 'built' : JSON.stringify(first)}`)
  const second = await build()
  t.equal(second.state, 'unchanged', 'the same inputs again: nothing new')
  t.equal(second.result?.cosaBuildId, first.result?.cosaBuildId, 'pointing at the first build')

  const listed = (await api(server, '/v1/builds?stream=minimal')).json()
  t.same(listed.builds.map((b: { id: string }) => b.id), [second.id, first.id], 'both listed from PostgreSQL, newest first')
  t.notOk(existsSync(join(dataDir, 'cosa-buildd.db')), 'no SQLite file: the state is in PostgreSQL')
  const log = await api(server, `/v1/builds/${first.id}/log`)
  t.match(log.text, /==> cosa-buildd: config commit [0-9a-f]{40}\n[\s\S]*==> cosa build\n[\s\S]*==> cosa-buildd: build succeeded\n$/,
    'the log, from the database: service notes and the container\'s output, ending with the outcome')
  t.equal(log.headers.get('x-log-size'), String(Buffer.byteLength(log.text)))
  t.notOk(existsSync(join(dataDir, 'logs', `${first.id}.log`)), 'no log file: logs are in PostgreSQL')
  t.match(server.output(), /"database":"postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/service".*"msg":"state on postgres"/, 'the start names the database')
  t.notMatch(server.output(), PG_PASSWORD, 'the password is in no log line')
})
