import t from 'tap'
import { emptyBuildsJson, insertBuild, parseBuildsJson, removeBuilds, serializeBuildsJson } from '../../src/cosa/builds-json.js'

const at = new Date('2026-11-26T10:11:12.345Z')

t.test('builds.json follows cosa\'s insert rules', async (t) => {
  const empty = emptyBuildsJson(at)
  t.same(empty, { 'schema-version': '1.0.0', builds: [], timestamp: '2026-11-26T10:11:12Z' })
  const one = insertBuild(empty, '1.0', 'x86_64', at)
  const two = insertBuild(one, '1.1', 'x86_64', at)
  t.same(two.builds.map((b) => b.id), ['1.1', '1.0'], 'a new id goes first')
  const arch = insertBuild(two, '1.0', 'aarch64', at)
  t.same(arch.builds, [{ id: '1.1', arches: ['x86_64'] }, { id: '1.0', arches: ['x86_64', 'aarch64'] }], 'a known id gains the arch in place')
  t.same(insertBuild(arch, '1.0', 'aarch64', at), arch, 'inserting an arch twice changes nothing')
  t.same(two.builds.map((b) => b.arches), [['x86_64'], ['x86_64']], 'inputs are not mutated')
  t.same(removeBuilds(arch, new Set(['1.1']), at).builds.map((b) => b.id), ['1.0'])
})

t.test('parsing refuses what cosa refuses and keeps what it does not know', async (t) => {
  const doc = parseBuildsJson(JSON.stringify({
    'schema-version': '1.2.0', builds: [{ id: 'a', arches: ['x86_64'], 'policy-cleanup': { cloud: true } }],
    timestamp: 'x', tags: [{ name: 'stable', target: 'a', created: 'y' }]
  }))
  const out = JSON.parse(serializeBuildsJson(insertBuild(doc, 'b', 'x86_64', at)).toString())
  t.same(out.tags, [{ name: 'stable', target: 'a', created: 'y' }], 'tags survive')
  t.same(out.builds[1]['policy-cleanup'], { cloud: true }, 'per-build keys survive')
  t.throws(() => parseBuildsJson('{"schema-version":"2.0.0","builds":[]}'), /schema-version 2.0.0/)
  t.throws(() => parseBuildsJson('{"builds":[]}'), /schema-version 0.0.1/, 'a missing version reads as 0.0.1')
  t.throws(() => parseBuildsJson('{"schema-version":"1.0.0","builds":[{"id":1}]}'), /no valid builds list/)
  t.throws(() => parseBuildsJson('not json'))
})
