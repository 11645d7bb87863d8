import type { Test } from 'tap'
import type { Database } from '../../src/store/repositories.js'
import type { NewDelivery, WebhookRecord } from '../../src/webhooks/model.js'

// What the repositories do, on whichever database: sqlite-contract.test.ts
// and postgres-contract.test.ts run these same tests against a fresh
// database each. This file is the definition of their behaviour.

export interface Opened {
  db: Database
  /** Closes `db` and opens the same database again. */
  reopen(): Promise<Database>
}

export type Open = (t: Test) => Promise<Opened>

const stream = (name: string) => ({
  name, config: { url: 'file:///x', ref: 'main' }, image: 'i', platforms: ['qemu'], timeoutSeconds: 60, keep: 10,
  resources: {}, recipe: [['build']], createdAt: 'c', updatedAt: 'u'
})
const request = { force: false, skipPrune: false }
const queued = { type: 'build.queued', time: 't' } as const
const started = { type: 'build.started', time: 't' } as const
const finished = { type: 'build.finished', time: 't' } as const
const AT = '2026-11-30T17:00:00.000Z'

const r1 = { owner: 'r1', ms: 60_000 }
const claim = async (db: Database, max: number) => (await db.builds.claimNext(max, 't', 'preparing', started, r1))?.build
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const insert = (db: Database, id: string, s: string, createdAt = 'now') =>
  db.builds.insertBuild({ id, stream: s, request, createdAt }, undefined, queued)

const hook = (name: string): WebhookRecord => ({
  name, url: 'https://hooks.example.com/x', events: ['build.finished'], streams: [], enabled: true,
  createdAt: AT, updatedAt: AT, secret: 'whsec_AAAA', cursor: 0
})
const delivery = (seq: number): NewDelivery =>
  ({ id: `msg_${seq}`, eventSeq: seq, type: 'build.finished', buildId: `b${seq}`, body: '{}' })

export function storeContract (t: Test, open: Open) {
  const fresh = async (t: Test) => {
    const opened = await open(t)
    for (const s of ['a', 'b', 'c', 'd']) await opened.db.streams.putStream(stream(s))
    return opened
  }

  t.test('claims: oldest first, one per stream, bounded in all', async (t) => {
    const { db } = await fresh(t)
    for (const [id, s] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b'], ['b2', 'b']]) await insert(db, id!, s!)
    t.equal((await claim(db, 3))?.id, 'a1')
    t.equal((await claim(db, 3))?.id, 'b1', 'a2 waits: stream a is busy')
    t.equal(await claim(db, 3), undefined, 'nothing else may start')
    const state = async (id: string) => db.builds.queueState((await db.builds.getBuild(id))!)
    t.same(await state('a2'), { streamBusy: true, position: 1 }, 'a2: first in its busy stream\'s queue')
    await db.builds.transition('a1', ['running'], 'succeeded', {}, finished)
    t.equal((await claim(db, 1)), undefined, 'the global limit holds (b1 runs)')
    t.equal((await claim(db, 2))?.id, 'a2')
    t.same(await db.builds.activeCounts().then((c) => c.sort((x, y) => x.stream.localeCompare(y.stream) || x.state.localeCompare(y.state))), [
      { stream: 'a', state: 'running', count: 1 }, { stream: 'b', state: 'queued', count: 1 }, { stream: 'b', state: 'running', count: 1 }])
  })

  t.test('the queue as it will start: free streams first, busy ones in their own line', async (t) => {
    const { db } = await fresh(t)
    for (const [id, s] of [['a1', 'a'], ['a2', 'a'], ['a3', 'a'], ['b1', 'b'], ['c1', 'c'], ['b2', 'b'], ['d1', 'd']]) await insert(db, id!, s!)
    t.equal((await claim(db, 1))?.id, 'a1', 'one slot: a1 runs')
    const state = async (id: string) => db.builds.queueState((await db.builds.getBuild(id))!)
    t.same(await state('b1'), { streamBusy: false, position: 3 }, 'b1: a2 and a3, older, go first once a1 is done')
    t.same(await state('d1'), { streamBusy: false, position: 6 })
    t.same(await state('a3'), { streamBusy: true, position: 2 }, 'a3: behind a2 in stream a')
    t.same((await db.builds.queueHeads()).map((b) => b.id), ['a2', 'b1', 'c1', 'd1'], 'the head of each stream\'s queue, oldest first')
    const order = []
    for (let running = 'a1'; ;) {
      await db.builds.transition(running, ['running'], 'succeeded', {}, finished)
      const next = await claim(db, 1)
      if (!next) break
      order.push(next.id)
      running = next.id
    }
    t.same(order, ['a2', 'a3', 'b1', 'c1', 'b2', 'd1'], 'one slot: oldest first, as the positions said')
  })

  t.test('concurrent claimers: each build once, never two running in a stream', async (t) => {
    const { db } = await fresh(t)
    for (let i = 0; i < 12; i++) await insert(db, `x${i}`, ['a', 'b', 'c', 'd'][i % 4]!)
    for (let round = 0; round < 3; round++) {
      const claimed = (await Promise.all(Array.from({ length: 8 }, () => claim(db, 100)))).filter((b) => b !== undefined)
      // A claimer that lost every race comes back empty: the next poll takes the rest.
      for (let next; (next = await claim(db, 100));) claimed.push(next)
      t.equal(new Set(claimed.map((b) => b.id)).size, claimed.length, `round ${round}: no build claimed twice`)
      t.equal(claimed.length, 4, 'one per stream')
      const running = await db.builds.buildsInState(['running'])
      t.same(running.map((b) => b.stream).sort(), ['a', 'b', 'c', 'd'], `round ${round}: one running build per stream`)
      t.same(running.map((b) => b.id).sort(), [0, 1, 2, 3].map((i) => `x${round * 4 + i}`).sort(), 'the oldest of each stream')
      for (const b of running) await db.builds.transition(b.id, ['running'], 'succeeded', {}, finished)
    }
    t.equal(await claim(db, 100), undefined, 'the queue is empty')
  })

  t.test('transitions are conditional: the first terminal writer wins', async (t) => {
    const { db } = await fresh(t)
    await insert(db, 'x', 'a')
    t.equal(await db.builds.transition('x', ['running'], 'failed', {}, finished), undefined, 'not running: no change')
    t.equal((await db.builds.transition('x', ['queued'], 'cancelled', { message: 'm', exitCode: 3 }, finished))?.build.state, 'cancelled')
    t.equal(await db.builds.transition('x', ['queued', 'running'], 'succeeded', {}, finished), undefined)
    t.match(await db.builds.getBuild('x'), { state: 'cancelled', message: 'm', exitCode: 3 })
    const racing = await Promise.all(['succeeded', 'failed', 'cancelled'].map(async (to, i) => {
      await insert(db, `r${i}`, 'b')
      return db.builds.transition(`r${i}`, ['queued'], to as 'failed', {}, finished)
    }))
    t.ok(racing.every((c) => c?.build.state !== undefined))
    const twice = await Promise.all(['failed', 'cancelled'].map((to) => db.builds.transition('r0', ['succeeded'], to as 'failed', {}, finished)))
    t.equal(twice.filter(Boolean).length, 1, 'of two concurrent changes from one state, one wins')
  })

  t.test('quiet updates, results and tokens', async (t) => {
    const { db } = await fresh(t)
    await insert(db, 'x', 'a')
    t.equal(await db.builds.update('x', ['running'], { containerId: 'c' }), undefined, 'not in the state asked for')
    t.equal((await db.builds.update('x', ['queued'], { containerId: 'c', resultTokenHash: 'h' }))?.containerId, 'c')
    t.equal(await db.builds.resultTokenHash('x'), 'h')
    t.equal(await db.builds.buildByResultTokenHash('h'), 'x')
    await claim(db, 1)
    const posted = { outcome: 'built', result: { cosaBuildId: '1.0', images: [] }, metaJson: '{"buildid":"1.0"}' } as never
    t.equal((await db.builds.recordResult('x', posted))?.id, 'x')
    t.same(await db.builds.postedResult('x'), posted)
    t.equal(await db.builds.getMeta('x'), undefined, 'meta.json once the build has ended')
    await db.builds.transition('x', ['running'], 'succeeded', { resultTokenHash: null, finishedAt: AT }, finished)
    t.equal(await db.builds.getMeta('x'), '{"buildid":"1.0"}')
    t.equal(await db.builds.resultTokenHash('x'), undefined, 'null clears a field')
    t.equal((await db.builds.latestResult('a'))?.id, 'x')
  })

  t.test('a retried attempt: recorded in attempts, its posted result and container cleared as it goes back to queued', async (t) => {
    const { db } = await fresh(t)
    await insert(db, 'x', 'a')
    await claim(db, 1)
    await db.builds.update('x', ['running'], { containerId: 'c1' })
    await db.builds.recordResult('x', { outcome: 'built', result: { cosaBuildId: '1.0', images: [] }, metaJson: '{}' } as never)
    const attempts = [{ engine: 'e1', endedAt: AT, state: 'failed' as const, reason: 'infrastructure' as const, message: 'gone' }]
    const back = await db.builds.transition('x', ['running'], 'queued', {
      attempts, containerId: null, result: null, outcome: null, metaJson: null, startedAt: null
    }, { type: 'build.requeued', time: AT })
    t.match(back?.build, { state: 'queued', attempts })
    t.equal(back?.build.containerId, undefined)
    t.equal(back?.build.result, undefined)
    t.equal(await db.builds.postedResult('x'), undefined, 'the attempt\'s posted result is gone')
    t.same(back?.event.build.attempts, attempts, 'the event carries the attempts')
    t.same((await db.builds.getBuild('x'))?.attempts, attempts, 'read back as written')
  })

  t.test('leases: a claim takes one; only its holder renews it; expiry makes the build adoptable', async (t) => {
    const { db } = await fresh(t)
    for (const [id, s] of [['x', 'a'], ['y', 'b']]) await insert(db, id!, s!)
    const x = (await db.builds.claimNext(10, 't', 'preparing', started, { owner: 'r1', ms: 300 }))!
    const y = (await db.builds.claimNext(10, 't', 'preparing', started, r1))!
    t.ok(x.token > 0 && y.token > x.token, 'each claim has a new token, and tokens only grow')
    t.same((await db.leases.adoptable('r1')).map((a) => a.build.id), ['x', 'y'], 'a replica restarted under its id may take its own back')
    t.ok(await db.leases.renew('y', y.token, r1), 'the holder renews')
    t.equal(await db.leases.renew('y', y.token, { owner: 'r2', ms: 60_000 }), undefined, 'renewal by the wrong owner fails')
    t.equal(await db.leases.renew('y', x.token, r1), undefined, 'renewal with another token fails')
    await sleep(600)
    t.same((await db.leases.adoptable('r2')).map((a) => [a.build.id, a.token]), [['x', x.token]], 'x expired: adoptable, y holds')
    t.equal(await db.leases.takeOver('y', y.token, { owner: 'r2', ms: 60_000 }), undefined, 'a held lease is not taken')
    const racers = await Promise.all(['r2', 'r3', 'r4'].map((owner) => db.leases.takeOver('x', x.token, { owner, ms: 60_000 })))
    const taken = racers.filter((r) => r !== undefined)
    t.equal(taken.length, 1, 'of three replicas taking an expired lease at once, one does')
    t.ok(taken[0]!.token > y.token, 'with a new, higher token')
    t.equal(await db.leases.renew('x', x.token, { owner: 'r1', ms: 60_000 }), undefined, 'the old holder cannot renew any more')
  })

  t.test('fencing: a write with a stale token changes nothing and appends no event', async (t) => {
    const { db } = await fresh(t)
    await insert(db, 'x', 'a')
    const old = (await db.builds.claimNext(10, 't', 'preparing', started, r1))!
    t.ok(await db.leases.renew('x', old.token, { owner: 'r1', ms: -1 }), 'renewed into the past: expired')
    const taken = (await db.leases.takeOver('x', old.token, { owner: 'r2', ms: 60_000 }))!
    const events = await db.events.latestEventSeq()
    t.equal(await db.builds.update('x', ['running'], { containerId: 'stale' }, old.token), undefined, 'a quiet update: 0 rows')
    t.equal(await db.builds.transition('x', ['running'], 'running', { phase: 'publishing' }, started, old.token), undefined, 'a phase: 0 rows')
    t.equal(await db.builds.transition('x', ['running'], 'failed', {}, finished, old.token), undefined, 'the final state: 0 rows')
    t.match(await db.builds.getBuild('x'), { state: 'running', phase: 'preparing', containerId: undefined }, 'the build is as it was')
    t.equal(await db.events.latestEventSeq(), events, 'no event')
    t.equal((await db.builds.update('x', ['running'], { containerId: 'c' }, taken.token))?.containerId, 'c', 'the new token writes')
    t.equal((await db.builds.transition('x', ['running'], 'succeeded', {}, finished, taken.token))?.build.state, 'succeeded')
    t.same(await db.leases.adoptable('r3'), [], 'a finished build is nobody\'s to adopt')
  })

  t.test('a released lease is adoptable at once; duty leases have one holder', async (t) => {
    const { db } = await fresh(t)
    await insert(db, 'x', 'a')
    const x = (await db.builds.claimNext(10, 't', 'preparing', started, r1))!
    t.equal(await db.leases.release('x', x.token + 1), false, 'not with another token')
    t.equal(await db.leases.release('x', x.token), true)
    t.same((await db.leases.adoptable('r2')).map((a) => a.build.id), ['x'])
    const hold = (owner: string, ms = 60_000) => db.leases.holdDuty('reconcile', { owner, ms })
    const first = await Promise.all(['a', 'b', 'c', 'd'].map((o) => hold(o)))
    t.equal(first.filter((tok) => tok !== undefined).length, 1, 'four at once: one holder')
    const holder = ['a', 'b', 'c', 'd'][first.findIndex((tok) => tok !== undefined)]!
    const other = holder === 'a' ? 'b' : 'a'
    t.equal(await hold(holder), first.find(Boolean), 'the holder renews, same token')
    t.equal(await hold(other), undefined, 'another waits')
    await db.leases.releaseDuty('reconcile', holder)
    const next = await hold(other)
    t.ok(next !== undefined && next > first.find(Boolean)!, 'once released, another holds it with a higher token')
    t.equal(await hold(holder), undefined)
  })

  t.test('idempotency keys are per client and tied to the body, and survive a reopen', async (t) => {
    const opened = await fresh(t)
    const key = { scope: 'client-1', key: 'k', fingerprint: 'f1' }
    const add = (db: Database, id: string, k: typeof key) => db.builds.insertBuild({ id, stream: 'a', request, createdAt: AT }, k, queued)
    t.equal((await add(opened.db, 'i1', key)).kind, 'created')
    t.match(await add(opened.db, 'i2', key), { kind: 'replayed', build: { id: 'i1' } })
    t.equal((await add(opened.db, 'i3', { ...key, fingerprint: 'f2' })).kind, 'mismatch')
    t.equal((await add(opened.db, 'i4', { ...key, scope: 'client-2' })).kind, 'created')
    const db = await opened.reopen()
    t.same((await db.builds.buildsInState(['queued'])).map((b) => b.id), ['i1', 'i4'], 'queued builds survive a reopen')
    t.match(await add(db, 'i5', key), { kind: 'replayed', build: { id: 'i1' } })
  })

  t.test('idempotency under concurrency: many inserts with one key make one build', async (t) => {
    const { db } = await fresh(t)
    const key = { scope: 'c', key: 'same', fingerprint: 'f' }
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      db.builds.insertBuild({ id: `p${i}`, stream: 'a', request, createdAt: AT }, key, queued)))
    t.equal(outcomes.filter((o) => o.kind === 'created').length, 1, 'one created')
    const created = outcomes.find((o) => o.kind === 'created')!
    t.ok(outcomes.every((o) => o.kind !== 'mismatch' && o.build.id === created.build.id), 'the others replay it')
    t.equal((await db.builds.listBuilds({ limit: 100 })).length, 1, 'one build stored')
    t.equal((await db.events.eventsAfter(0, { limit: 100 })).length, 1, 'one event')
  })

  t.test('keyset paging: newest first, before a sequence number, filtered', async (t) => {
    const { db } = await fresh(t)
    for (let i = 0; i < 7; i++) await insert(db, `k${i}`, i % 2 ? 'a' : 'b')
    const first = await db.builds.listBuilds({ limit: 3 })
    t.same(first.map((b) => b.id), ['k6', 'k5', 'k4'])
    const next = await db.builds.listBuilds({ limit: 3, beforeSeq: first.at(-1)!.seq })
    t.same(next.map((b) => b.id), ['k3', 'k2', 'k1'])
    t.same((await db.builds.listBuilds({ limit: 10, stream: 'a' })).map((b) => b.id), ['k5', 'k3', 'k1'])
    await claim(db, 1)
    t.same((await db.builds.listBuilds({ limit: 10, state: 'running' })).map((b) => b.id), ['k0'])
  })

  t.test('the outbox: one event per change, in commit order, filtered, numbered on after a reopen', async (t) => {
    const opened = await fresh(t)
    const { db } = opened
    t.equal(await db.events.latestEventSeq(), 0)
    const created = await insert(db, 'x', 'a')
    t.equal(created.kind === 'created' && created.event.seq, 1, 'the queued event comes with the build')
    await insert(db, 'y', 'b')
    t.equal(await db.builds.transition('x', ['running'], 'failed', {}, finished), undefined)
    const change = await db.builds.transition('x', ['queued'], 'cancelled', { finishedAt: 'f' }, finished)
    t.same(change?.event, { seq: 3, type: 'build.finished', buildId: 'x', stream: 'a', time: 't', build: { ...change!.event.build } })
    t.equal(change?.event.build.state, 'cancelled', 'the event has the build as it is after the change')
    t.notOk('seq' in change!.event.build, 'in the API\'s shape: no row number')
    t.same((await db.events.eventsAfter(0, { limit: 10 })).map((e) => [e.seq, e.type, e.buildId]),
      [[1, 'build.queued', 'x'], [2, 'build.queued', 'y'], [3, 'build.finished', 'x']], 'a refused change appends nothing')
    t.same((await db.events.eventsAfter(1, { limit: 1 })).map((e) => e.seq), [2], 'after a seq, bounded')
    t.same((await db.events.eventsAfter(0, { limit: 10, stream: 'a' })).map((e) => e.seq), [1, 3])
    t.same((await db.events.eventsAfter(0, { limit: 10, build: 'y' })).map((e) => e.seq), [2])
    const again = await opened.reopen()
    const next = await insert(again, 'z', 'a')
    t.equal(next.kind === 'created' && next.event.seq, 4, 'numbering goes on after a reopen')
    await Promise.all(Array.from({ length: 20 }, (_, i) => insert(again, `w${i}`, 'c')))
    const seqs = (await again.events.eventsAfter(4, { limit: 100 })).map((e) => e.seq)
    t.same(seqs, Array.from({ length: 20 }, (_, i) => 5 + i), 'concurrent writers: numbers in order, none missing')
    t.equal(await again.events.latestEventSeq(), 24)
  })

  t.test('pins', async (t) => {
    const { db } = await fresh(t)
    await db.pins.setPin('a', '1.0', true, AT)
    await db.pins.setPin('a', '1.0', true, AT)
    await db.pins.setPin('a', '2.0', true, AT)
    await db.pins.setPin('b', '3.0', true, AT)
    await db.pins.setPin('a', '2.0', false, AT)
    t.same([...await db.pins.pinnedBuilds('a')], ['1.0'], 'pinning twice is once; unpinning removes')
    t.same([...await db.pins.pinnedBuilds('b')], ['3.0'])
  })

  t.test('streams: put keeps the creation time; delete refuses a busy stream, purges a finished one', async (t) => {
    const { db } = await fresh(t)
    const put = await db.streams.putStream({ ...stream('a'), createdAt: 'later', image: 'j' })
    t.match(put, { created: false, stream: { createdAt: 'c', image: 'j' } })
    t.same((await db.streams.listStreams()).map((s) => s.name), ['a', 'b', 'c', 'd'])
    await insert(db, 'q', 'a')
    t.same(await db.streams.deleteStream('a', true), { outcome: 'busy', purged: [] })
    await db.builds.transition('q', ['queued'], 'cancelled', {}, finished)
    await db.pins.setPin('a', '1.0', true, AT)
    t.same(await db.streams.deleteStream('a', true), { outcome: 'deleted', purged: ['q'] })
    t.equal(await db.builds.getBuild('q'), undefined, 'its builds are gone')
    t.same([...await db.pins.pinnedBuilds('a')], [], 'and its pins')
    t.same(await db.streams.deleteStream('a', false), { outcome: 'missing', purged: [] })
    await insert(db, 'kept', 'b')
    await db.builds.transition('kept', ['queued'], 'cancelled', {}, finished)
    t.same(await db.streams.deleteStream('b', false), { outcome: 'deleted', purged: [] })
    t.ok(await db.builds.getBuild('kept'), 'without purge the builds stay')
  })

  t.test('pruning: keys, events and finished builds, never a live one', async (t) => {
    const { db } = await fresh(t)
    await db.builds.insertBuild({ id: 'old', stream: 'a', request, createdAt: '2026-01-01' }, { scope: 's', key: 'k1', fingerprint: 'f' }, { type: 'build.queued', time: '2026-01-01' })
    await db.builds.insertBuild({ id: 'new', stream: 'b', request, createdAt: '2026-06-01' }, { scope: 's', key: 'k2', fingerprint: 'f' }, { type: 'build.queued', time: '2026-06-01' })
    await db.builds.transition('old', ['queued'], 'cancelled', { finishedAt: '2026-01-02' }, { type: 'build.finished', time: '2026-01-02' })
    t.equal(await db.idempotency.pruneIdempotencyKeys('2026-03-01'), 1)
    t.equal((await db.builds.insertBuild({ id: 'again', stream: 'a', request, createdAt: AT }, { scope: 's', key: 'k1', fingerprint: 'f' }, queued)).kind,
      'created', 'a forgotten key is new again')
    t.same((await db.builds.finishedBefore('2026-03-01', 10)).map((b) => b.id), ['old'])
    t.equal(await db.builds.deleteFinished(['old', 'new']), 1, 'the queued one is left alone')
    t.equal(await db.events.pruneEvents('2026-03-01'), 2)
    t.equal(await db.events.latestEventSeq(), 4, 'numbers are not reused after pruning')
    t.same((await db.events.eventsAfter(0, { limit: 10 })).map((e) => e.buildId), ['new', 'again'])
  })

  t.test('webhooks: a stale cursor writes nothing; deliveries, attempts and redelivery', async (t) => {
    const opened = await open(t)
    const w = opened.db.webhooks
    await w.insertWebhook(hook('a'))
    t.equal(await w.enqueue('a', 0, 2, [delivery(1), delivery(2)], AT), true)
    t.equal(await w.enqueue('a', 0, 2, [delivery(1), delivery(2)], AT), false, 'the same move again is refused')
    t.equal((await w.getWebhook('a'))!.cursor, 2)
    t.same((await w.listDeliveries('a', 10)).map((d) => d.eventSeq), [2, 1])
    t.same((await w.dueDeliveries(AT, 10, ['msg_1'])).map((d) => d.id), ['msg_2'], 'in-flight ones are skipped')
    t.equal(await w.oldestPendingAt(), AT)
    await w.recordAttempt('msg_1', { at: AT, statusCode: 500, durationMs: 5 }, { state: 'pending', tries: 1, nextAttemptAt: '2026-12-01' })
    await w.recordAttempt('msg_1', { at: AT, durationMs: 7, error: 'timeout' }, { state: 'failed' })
    t.match(await w.getDelivery('a', 'msg_1'), { state: 'failed', attempts: [{ statusCode: 500, durationMs: 5 }, { error: 'timeout', durationMs: 7 }] })
    t.match(await w.redeliver('a', 'msg_1', AT), { state: 'pending', nextAttemptAt: AT, attempts: [{}, {}] })
    const updated = await w.updateWebhook('a', { url: 'https://hooks.example.com/y', events: ['build.queued'], streams: ['s'] }, AT, { cursor: 9 })
    t.match(updated, { url: 'https://hooks.example.com/y', streams: ['s'], cursor: 9, secret: 'whsec_AAAA', enabled: true })

    await w.disableWebhook('a', 'gone', AT)
    t.match(await w.getWebhook('a'), { enabled: false, disabledReason: 'gone' })
    t.equal(await w.enqueue('a', 9, 10, [delivery(3)], AT), false, 'a disabled webhook takes no new deliveries')
    t.same(await w.dueDeliveries(AT, 10, []), [], 'nor sends its pending ones')
    t.equal(await w.nextDueAt(), undefined)
    const again = await opened.reopen()
    t.same((await again.webhooks.listWebhooks()).map((x) => x.name), ['a'], 'kept across a reopen')
    t.equal(await again.webhooks.deleteWebhook('a'), true)
    t.equal(await again.webhooks.deleteWebhook('a'), false)
    t.same(await again.webhooks.listDeliveries('a', 10), [], 'its deliveries went with it')
  })

  t.test('pruning webhook deliveries: finished and old ones go with their attempts; pending or lately tried stay', async (t) => {
    const { db } = await open(t)
    const w = db.webhooks
    await w.insertWebhook(hook('a'))
    const JAN = '2026-01-01T00:00:00.000Z'
    await w.enqueue('a', 0, 4, [1, 2, 3, 4].map(delivery), JAN)
    await w.recordAttempt('msg_1', { at: JAN, statusCode: 204, durationMs: 1 }, { state: 'delivered' })
    await w.recordAttempt('msg_2', { at: JAN, statusCode: 500, durationMs: 1 }, { state: 'failed' })
    // msg_3 failed in January, was redelivered by hand in June and delivered then.
    await w.recordAttempt('msg_3', { at: JAN, statusCode: 500, durationMs: 1 }, { state: 'failed' })
    await w.redeliver('a', 'msg_3', '2026-06-01T00:00:00.000Z')
    await w.recordAttempt('msg_3', { at: '2026-06-01T00:00:00.000Z', statusCode: 204, durationMs: 1 }, { state: 'delivered' })
    // msg_4 is still pending: a receiver is owed it, however old.
    t.equal(await w.pruneDeliveries('2026-03-01T00:00:00.000Z'), 2, 'the delivered and the failed one of January')
    t.same((await w.listDeliveries('a', 10)).map((d) => d.id), ['msg_4', 'msg_3'])
    t.equal(await w.pruneDeliveries('2026-03-01T00:00:00.000Z'), 0, 'nothing more')
    t.equal((await w.getDelivery('a', 'msg_3'))!.attempts.length, 2, 'a kept delivery keeps all its attempts')
  })

  t.test('engines: settings upserted with their drain flag kept; deleted; kept across a reopen', async (t) => {
    const opened = await open(t)
    const e = opened.db.engines
    const tls = { ca: '/c/ca.pem', cert: '/c/cert.pem', key: '/c/key.pem' }
    const remote = { name: 'remote', host: 'tcp://127.0.0.1:2376', tls, arch: 'aarch64' as const, capacity: 2, labels: { rack: 'r1' }, source: 'api' as const }
    t.match(await e.putEngine(remote, AT), { created: true, engine: { ...remote, draining: false, createdAt: AT, updatedAt: AT } })
    await e.putEngine({ name: 'local', host: 'unix:///var/run/docker.sock', capacity: 1, labels: {}, source: 'config' }, AT)
    t.match(await e.setDraining('remote', true, 'later'), { draining: true, updatedAt: 'later' })
    t.equal(await e.setDraining('nope', true, AT), undefined)
    const changed = await e.putEngine({ ...remote, capacity: 3 }, 'latest')
    t.equal(changed.created, false)
    t.match(changed.engine, { capacity: 3, draining: true, createdAt: AT, updatedAt: 'latest' }, 'a change keeps the drain flag and creation time')
    const again = await opened.reopen()
    t.same((await again.engines.listEngines()).map((x) => [x.name, x.source, x.draining]), [['local', 'config', false], ['remote', 'api', true]])
    t.notOk('tls' in (await again.engines.getEngine('local'))!, 'a socket engine has no tls')
    t.equal(await again.engines.deleteEngine('remote'), true)
    t.equal(await again.engines.deleteEngine('remote'), false)
    t.equal(await again.engines.getEngine('remote'), undefined)
  })

  t.test('placed claims: that build only, within its engine\'s capacity; the home engine is the last one per arch', async (t) => {
    const { db } = await fresh(t)
    for (const [id, s] of [['a1', 'a'], ['b1', 'b'], ['c1', 'c'], ['a2', 'a']]) await insert(db, id!, s!)
    const placed = async (id: string, engine: string, capacity = 1, arch = 'x86_64') =>
      (await db.builds.claimNext(10, 't', 'preparing', started, r1, { id, engine, arch, capacity }))?.build
    t.equal(await placed('a2', 'e1'), undefined, 'not a build that is not its stream\'s oldest')
    t.match(await placed('b1', 'e1'), { id: 'b1', state: 'running', engine: 'e1', arch: 'x86_64' }, 'a newer build than a1 when placed')
    t.equal(await placed('c1', 'e1'), undefined, 'e1 is full')
    t.match(await placed('c1', 'e1', 2, 'aarch64'), { id: 'c1', engine: 'e1', arch: 'aarch64' }, 'room with a capacity of 2')
    t.equal(await db.builds.homeEngine('b', 'x86_64'), 'e1')
    t.equal(await db.builds.homeEngine('c', 'x86_64'), undefined, 'c ran on aarch64 only')
    await db.builds.transition('b1', ['running'], 'succeeded', {}, finished)
    await insert(db, 'b2', 'b')
    t.match(await placed('b2', 'e2'), { engine: 'e2' })
    t.equal(await db.builds.homeEngine('b', 'x86_64'), 'e2', 'the newest build\'s engine')
  })

  t.test('a multi-arch build moves to its next arch: fenced, within the engine\'s capacity, the last arch\'s run forgotten', async (t) => {
    const { db } = await fresh(t)
    for (const [id, s] of [['m', 'a'], ['o', 'b']]) await insert(db, id!, s!)
    const m = (await db.builds.claimNext(10, 't', 'preparing', started, r1, { id: 'm', engine: 'x1', arch: 'x86_64', capacity: 1 }))!
    await db.builds.claimNext(10, 't', 'preparing', started, r1, { id: 'o', engine: 'arm', arch: 'aarch64', capacity: 1 })
    await db.builds.update('m', ['running'], { containerId: 'c1', resultTokenHash: 'h1', message: 'm' }, m.token)
    await db.builds.recordResult('m', { outcome: 'built', result: { cosaBuildId: '1.0' }, metaJson: '{}' } as never)
    const arches = [{ arch: 'x86_64', state: 'succeeded' as const }, { arch: 'aarch64', state: 'running' as const, engine: 'arm' }]
    t.equal(await db.builds.moveArch('m', { engine: 'arm', arch: 'aarch64', capacity: 1 }, arches, m.token), 'full', 'arm runs o: full')
    t.equal(await db.builds.moveArch('m', { engine: 'arm', arch: 'aarch64', capacity: 2 }, arches, m.token + 100), undefined,
      'another fencing token: nothing')
    t.match(await db.builds.getBuild('m'), { engine: 'x1', arch: 'x86_64', containerId: 'c1' }, 'unchanged so far')
    const moved = await db.builds.moveArch('m', { engine: 'arm', arch: 'aarch64', capacity: 2 }, arches, m.token)
    t.match(moved, { state: 'running', engine: 'arm', arch: 'aarch64', containerId: undefined, message: undefined, result: undefined, arches },
      'room with a capacity of 2: moved, with its arches record')
    t.equal(await db.builds.resultTokenHash('m'), undefined, 'the last arch\'s token is forgotten')
    t.equal(await db.builds.postedResult('m'), undefined, 'and its posted result')
    t.same((await db.builds.getBuild('m'))?.arches, arches, 'the record reads back')
    await db.builds.update('m', ['running'], { arches: [{ ...arches[0]!, engine: 'x2' }, arches[1]!] }, m.token)
    t.equal(await db.builds.homeEngine('a', 'x86_64'), 'x2', 'the home engine of each arch of a multi-arch build is the one that ran it')
    t.equal(await db.builds.homeEngine('a', 'aarch64'), 'arm')
  })
}
