import fc from 'fast-check'
import t, { type Test } from 'tap'
import { LocalStore } from '../../src/artifacts/local-store.js'
import { configRepo, register, requireDocker, startApp, submit, type TestApp } from '../helpers.js'
import { FAULT_RECIPE, waitForLog } from './faults.js'
import { storedBuilds } from './store-check.js'

// Random sequences of what happens to one stream — submits with random
// flags, versions and platforms, a fault at a random step, cancels, input
// changes, retention settings, tags — on the real engine and cosa-lite.
// After every step, what the store holds is what a pipeline may rely on:
//   - builds.json lists exactly the builds that ended `succeeded`, less those
//     retention pruned (a model of keep and tags decides which), newest first;
//   - every listed build has every image it asked for, each served with the
//     sha256 and size its meta.json gives, and no listed build lacks files;
//   - a pruned build's artifact is 410, a tag never names a missing build;
//   - `unchanged` points at the store's latest build; a failed build is not listed;
// and at the end the stream can always make a new build with `force`.
// COSA_BUILDD_PROPERTY_RUNS (default 3) and COSA_BUILDD_PROPERTY_SEED make it longer or replay one.

const RUNS = Number(process.env.COSA_BUILDD_PROPERTY_RUNS ?? 3)
const SEED = process.env.COSA_BUILDD_PROPERTY_SEED === undefined ? undefined : Number(process.env.COSA_BUILDD_PROPERTY_SEED)

type Fault = 'none' | 'early' | 'exit' | 'corrupt' | 'cancel'
type Op =
  | { kind: 'submit', force: boolean, version?: string | undefined, platforms?: readonly string[] | undefined, fault: Fault }
  | { kind: 'change' }
  | { kind: 'keep', keep: number }
  | { kind: 'tag', index: number }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({
    kind: fc.constant('submit' as const),
    force: fc.boolean(),
    version: fc.option(fc.constantFrom('v1', 'release-000000000001', 'r2'), { nil: undefined, freq: 3 }),
    platforms: fc.option(fc.constantFrom(['qemu'], ['qemu', 'nope']), { nil: undefined, freq: 3 }),
    fault: fc.constantFrom<Fault>('none', 'none', 'early', 'exit', 'corrupt', 'cancel')
  }, { requiredKeys: ['kind', 'force', 'fault'] }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'change' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('keep' as const), keep: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('tag' as const), index: fc.nat(4) }) }
)

/** What the store must hold, kept by the test's own rules (cosa prune's: tags neither count nor go). */
class Model {
  keep = 3
  inputs = 0
  /** Inputs of the store's latest build. */
  latestInputs = -1
  listed: string[] = []
  tags = new Set<string>()
  succeeded: string[] = []

  published (id: string) {
    this.succeeded.unshift(id)
    this.latestInputs = this.inputs
    let kept = 0
    this.listed = [id, ...this.listed].filter((b, i) => {
      if (this.tags.has(b)) return true
      if (i > 0 && kept >= this.keep) return false
      kept++
      return true
    })
  }
}

async function step (t: Test, h: TestApp, stream: string, repo: Awaited<ReturnType<typeof configRepo>>, model: Model, op: Op, fault: { now: string }) {
  if (op.kind === 'change') {
    model.inputs++
    await repo.commit('overlay.d/10-motd/usr/etc/motd', `inputs ${model.inputs}\n`)
    return
  }
  if (op.kind === 'keep') {
    model.keep = op.keep
    const res = await h.app.inject({ method: 'PUT', url: `/v1/streams/${stream}`, payload: { config: { url: repo.url, ref: 'main' }, recipe: FAULT_RECIPE, keep: op.keep } })
    t.equal(res.statusCode, 200, `keep ${op.keep}`)
    return
  }
  if (op.kind === 'tag') {
    // As `cosa tag update` leaves it in the bucket; applies at the next publish.
    const target = model.listed[op.index % Math.max(1, model.listed.length)]
    if (!target) return
    const store = new LocalStore(`${h.dataDir}/store`)
    const index = JSON.parse((await store.getBytes(`${stream}/builds/builds.json`))!.toString())
    model.tags.add(target)
    const tags = [...model.tags].map((id) => ({ name: `tag-${id}`, target: id, created: '2026-11-30T00:00:00Z' }))
    await store.putBytes(`${stream}/builds/builds.json`, Buffer.from(JSON.stringify({ ...index, tags })), 'application/json')
    return
  }

  // A cancel needs the hang to be reached: only a build that runs its image steps does.
  const force = op.force || op.fault === 'cancel'
  const wanted = op.fault === 'cancel' ? 'hang' : op.fault
  if (fault.now !== wanted) {
    await repo.commit('fault', wanted)
    fault.now = wanted
  }
  const body = { force, ...(op.version ? { version: op.version } : {}), ...(op.platforms ? { platforms: op.platforms } : {}) }
  const conflict = op.version !== undefined && model.listed.includes(op.version)
  const nope = (op.platforms ?? []).includes('nope')
  // The store's latest lacks a `nope` image: such a build is always forced.
  const isNew = force || nope || model.listed.length === 0 || model.inputs !== model.latestInputs
  let expected: { state: string, reason?: string }
  if (conflict) expected = { state: 'failed', reason: 'invalid_settings' }
  else if (op.fault === 'early') expected = { state: 'failed', reason: 'exit_code' }
  else if (!isNew) expected = { state: 'unchanged' }
  else if (op.fault === 'exit') expected = { state: 'failed', reason: 'exit_code' }
  else if (op.fault === 'cancel') expected = { state: 'cancelled' }
  else if (nope) expected = { state: 'failed', reason: 'exit_code' }
  else if (op.fault === 'corrupt') expected = { state: 'failed', reason: 'publish_failed' }
  else expected = { state: 'succeeded' }

  const submitted = await submit(h, stream, body)
  if (expected.state === 'cancelled') {
    await waitForLog(h, submitted.id, 'hanging')
    await h.app.inject({ method: 'POST', url: `/v1/builds/${submitted.id}/cancel` })
  }
  const build = await h.waitFor(submitted.id, ['succeeded', 'unchanged', 'failed', 'cancelled'], 180_000)
  t.match(build, expected, `${JSON.stringify(body)} fault ${op.fault}: ${build.state} ${build.reason ?? ''} ${build.message ?? ''}`)

  if (build.state === 'succeeded') model.published(build.result.cosaBuildId)
  if (build.state === 'unchanged') t.equal(build.result?.cosaBuildId, model.listed[0], 'unchanged points at the store\'s latest build')
  // A failed build's leftover never reaches builds.json (checkStore compares it whole).
}

async function checkStore (t: Test, h: TestApp, stream: string, model: Model) {
  const stored = await storedBuilds(h, stream)
  t.same(stored.ids, model.listed, 'builds.json lists the succeeded builds retention kept, newest first')
  for (const b of stored.builds) t.ok(b.meta.images.ostree && b.meta.images.qemu, `${b.id} has every image`)
  for (const target of stored.tags) t.ok(stored.ids.includes(target), `tag on ${target} names a listed build`)
  const ids = await buildsById(h, stream)
  for (const id of model.succeeded.filter((s) => !model.listed.includes(s))) {
    const url = ids.get(id)?.result.artifacts[0].url
    t.equal((await h.app.inject({ url })).statusCode, 410, `pruned ${id}: 410`)
  }
}

const describe = (o: Op) => o.kind === 'submit'
  ? `submit(${[o.force && 'force', o.version, o.platforms?.join('+'), o.fault].filter(Boolean).join(',')})`
  : o.kind === 'keep' ? `keep(${o.keep})` : o.kind === 'tag' ? `tag(${o.index})` : o.kind

async function buildsById (h: TestApp, stream: string) {
  const { builds } = (await h.app.inject({ url: `/v1/builds?stream=${stream}&state=succeeded&limit=200` })).json()
  return new Map<string, any>(builds.map((b: any) => [b.result.cosaBuildId, b]))
}

t.test('a stream\'s store stays whole through random sequences of builds and faults', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, { builds: { stopGraceSeconds: 1 } })
  let run = 0
  const result = await fc.check(fc.asyncProperty(fc.array(opArb, { minLength: 3, maxLength: 7 }), async (ops) => {
    const stream = `p${run++}`
    const repo = await configRepo(t)
    await register(h, stream, { config: { url: repo.url, ref: 'main' }, recipe: FAULT_RECIPE, keep: 3 })
    const model = new Model()
    const fault = { now: 'none' }
    const results = await t.test(`${stream}: ${ops.map(describe).join(' ')}`, async (t) => {
      for (const op of ops) {
        await step(t, h, stream, repo, model, op, fault)
        await checkStore(t, h, stream, model)
      }
      await step(t, h, stream, repo, model, { kind: 'submit', force: true, fault: 'none' }, fault)
      await checkStore(t, h, stream, model)
      t.equal((await storedBuilds(h, stream)).ids[0], model.succeeded[0], 'the stream can always make a new build with force')
    })
    if (!results?.ok) throw new Error(`${stream}: a step broke the store`)
  }), { numRuns: RUNS, endOnFailure: true, ...(SEED === undefined ? {} : { seed: SEED }) })
  t.comment(`fast-check seed ${result.seed}, ${result.numRuns} runs`)
  t.notOk(result.failed, result.failed ? `counterexample: ${JSON.stringify(result.counterexample)}` : 'every sequence held')
})
