import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { LocalStore } from '../../src/artifacts/local-store.js'
import { Publisher } from '../../src/artifacts/publisher.js'
import { SpaceGuard } from '../../src/artifacts/space-guard.js'
import { HeldLeases } from '../../src/builds/held-leases.js'
import type { Meta } from '../../src/cosa/meta.js'
import { openDatabase } from '../../src/store/open-database.js'
import { silentLogger, tempDir } from '../helpers.js'

// Two replicas publishing builds of one stream at the same moment, round
// after round: each has its own publisher and database connection, they
// share the artifact store and the database, and builds.json is changed by
// one of them at a time (a lock row with a lease), so no entry is lost.

const ROUNDS = 15

t.test('two replicas publishing to one stream at once never lose a builds.json entry', async (t) => {
  const root = await tempDir(t)
  const path = join(root, 'db.sqlite')
  const artifacts = new LocalStore(join(root, 'store'))
  const workdir = join(root, 'work')
  const replica = async (owner: string) => {
    const store = await openDatabase({}, path)
    t.teardown(() => store.close())
    const leases = new HeldLeases({ store, logger: silentLogger, terms: { owner, ms: 5000 } })
    return new Publisher({
      store: artifacts,
      guard: new SpaceGuard({ dataDir: root, store: artifacts, minFreeBytes: 0 }),
      logger: silentLogger,
      now: () => new Date(),
      lockStream: (stream) => leases.lock(`builds.json/${stream}`)
    })
  }
  const [a, b] = [await replica('a'), await replica('b')]
  const publish = async (publisher: Publisher, id: string) => {
    await mkdir(join(workdir, 'builds', id, 'x86_64'), { recursive: true })
    const meta = { buildid: id, images: {} } as unknown as Meta
    await writeFile(join(workdir, 'builds', id, 'x86_64', 'meta.json'), JSON.stringify(meta))
    return publisher.publish({ stream: 's', buildId: id, workdir, arch: 'x86_64', meta, metaJson: JSON.stringify(meta), keep: 1000, pinned: new Set() })
  }
  for (let round = 0; round < ROUNDS; round++) await Promise.all([publish(a, `a${round}`), publish(b, `b${round}`)])
  const listed = (await a.readBuildsJson('s'))!.builds.map((e) => e.id).sort()
  const expected = Array.from({ length: ROUNDS }, (_, i) => [`a${i}`, `b${i}`]).flat().sort()
  t.same(listed, expected, `all ${ROUNDS * 2} builds listed, each once`)
})
