import t from 'tap'
import { EngineRegistry } from '../../src/executor/engine-registry.js'
import { FakeExecutor } from './fake-executor.js'

const engine = (name: string) => new FakeExecutor({ name, workdir: () => '/nonexistent' })

t.test('engines by name; no name is the default, the first', async (t) => {
  const [local, remote] = [engine('local'), engine('remote')]
  const registry = new EngineRegistry([local, remote])
  t.equal(registry.default, local)
  t.equal(registry.get(undefined), local, 'a build from before builds named their engine is the default one\'s')
  t.equal(registry.get('remote'), remote)
  t.equal(registry.get('gone'), undefined)
  t.same(registry.all().map((e) => e.name), ['local', 'remote'])
})

t.test('two engines of one name are refused', async (t) => {
  t.throws(() => new EngineRegistry([engine('a'), engine('a')]), /two engines are named a/)
})

t.test('engines are added, replaced, drained and removed at run time; the default stays', async (t) => {
  const local = engine('local')
  const registry = new EngineRegistry([{ executor: local, capacity: 3, draining: false }])
  t.same(registry.entry('local'), { executor: local, capacity: 3, draining: false })
  const remote = engine('remote')
  registry.put({ executor: remote, capacity: 1, draining: false })
  t.equal(registry.get('remote'), remote)
  const moved = engine('remote')
  registry.put({ executor: moved, capacity: 2, draining: true })
  t.equal(registry.get('remote'), moved, 'a PUT replaces the engine of that name')
  registry.setDraining('remote', false)
  t.equal(registry.entry('remote')?.draining, false)
  registry.remove('remote')
  t.same(registry.all().map((e) => e.name), ['local'])
  t.throws(() => registry.remove('local'), /the default engine cannot be removed/)
  t.throws(() => registry.put({ executor: engine('local'), capacity: 1, draining: false }), /cannot be replaced/)
  t.equal(new EngineRegistry([engine('x')]).entry('x')?.capacity, 1, 'an engine given alone has room for one build')
})
