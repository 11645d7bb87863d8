import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { openDatabase } from '../../src/store/open-database.js'
import { readMigrations } from '../../src/store/migrations.js'
import type { Database as Db } from '../../src/store/repositories.js'
import { tempDir } from '../helpers.js'
import { storeContract } from './contract.js'

// The contract on SQLite, a fresh file per test; and the upgrade of a data
// directory from before numbered migrations.

storeContract(t, async (t) => {
  const path = join(await tempDir(t), 'db.sqlite')
  let db: Db = await openDatabase({}, path)
  t.teardown(() => db.close())
  return {
    db,
    reopen: async () => {
      await db.close()
      db = await openDatabase({}, path)
      return db
    }
  }
})

/** A database as the service left it before numbered migrations: the builds' steps in user_version, the webhooks' in schema_versions. */
async function legacyDatabase (path: string, userVersion: number, webhooks: boolean) {
  const files = await readMigrations('sqlite')
  const raw = new Database(path)
  // Files 001-003 were user_version 1-3, 004 the webhooks' step, 005 user_version 4.
  for (const v of [1, 2, 3, ...(webhooks ? [4] : []), ...(userVersion >= 4 ? [5] : [])]) raw.exec(files[v - 1]!.sql)
  raw.pragma(`user_version = ${userVersion}`)
  if (webhooks) {
    raw.exec('CREATE TABLE schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)')
    raw.exec("INSERT INTO schema_versions VALUES ('webhooks', 1)")
  }
  return raw
}

for (const [userVersion, webhooks] of [[3, false], [3, true], [4, true]] as const) {
  t.test(`a database from before numbered migrations (user_version ${userVersion}, webhooks ${webhooks}) opens and keeps its rows`, async (t) => {
    const path = join(await tempDir(t), 'db.sqlite')
    const raw = await legacyDatabase(path, userVersion, webhooks)
    raw.exec(`INSERT INTO streams VALUES ('s', '{"name":"s"}', 'c', 'u');
              INSERT INTO builds (id, stream, state, request, created_at) VALUES ('b1', 's', 'succeeded', '{}', 'now');
              INSERT INTO events (type, build_id, stream, time, build) VALUES ('build.queued', 'b1', 's', 't', '{}')`)
    if (webhooks) {
      raw.exec(`INSERT INTO webhooks (name, url, events, streams, secret, cursor, created_at, updated_at) VALUES ('w', 'https://x', '[]', '[]', 's', 1, 'c', 'u');
                INSERT INTO webhook_deliveries (id, webhook, event_seq, type, build_id, body, state, created_at) VALUES ('d', 'w', 1, 'build.queued', 'b1', '{}', 'failed', 'c');
                INSERT INTO webhook_attempts (delivery_seq, at, duration_ms) VALUES (1, 'first', 1), (1, 'second', 2)`)
    }
    raw.close()
    const db = await openDatabase({}, path)
    t.teardown(() => db.close())
    t.equal((await db.builds.getBuild('b1'))?.state, 'succeeded', 'builds kept')
    t.equal(await db.events.latestEventSeq(), 1, 'the outbox goes on from where it was')
    t.equal((await db.streams.getStream('s'))?.keep, 10)
    if (webhooks) t.same((await db.webhooks.getDelivery('w', 'd'))?.attempts.map((a) => a.at), ['first', 'second'], 'attempts kept, in order')
    const check = new Database(path, { readonly: true })
    t.teardown(() => check.close())
    t.same(check.prepare("SELECT version FROM schema_versions WHERE name = 'database'").get(), { version: (await readMigrations('sqlite')).length })
  })
}

t.test('SQLite has one process: hints are nothing', async (t) => {
  const db = await openDatabase({}, join(await tempDir(t), 'db.sqlite'))
  t.teardown(() => db.close())
  let heard = 0
  const stop = db.onQueueHint(() => { heard++ })
  await db.hintQueue()
  await stop()
  t.equal(heard, 0)
})
