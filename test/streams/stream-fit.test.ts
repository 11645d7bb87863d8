import t from 'tap'
import { bootTestProblems, DEFAULT_RESOURCES, describeProblems, effectiveResources, resourceProblems } from '../../src/streams/stream-fit.js'

// The rules alone; test/builds/integrity.test.ts checks them against a real engine's `docker info`.

const engine = { cpus: 2, memoryBytes: 8 * 1024 ** 3 }

t.test('limits beyond the engine are the stream\'s problem, named by field', async (t) => {
  t.same(resourceProblems({}, engine), [], 'defaults fit')
  t.same(resourceProblems({ cpus: 2, memoryBytes: 8 * 1024 ** 3 }, engine), [], 'exactly the engine fits')
  const problems = resourceProblems({ cpus: 2.5, memoryBytes: 9 * 1024 ** 3 }, engine)
  t.same(problems.map((p) => p.field), ['resources.cpus', 'resources.memoryBytes'])
  t.equal(describeProblems(problems),
    'resources.cpus: 2.5 is more than the 2 CPUs of the Docker engine; resources.memoryBytes: 9.0 GiB is more than the 8.0 GiB of memory of the Docker engine')
})

t.test('the CPU default is no more than the engine has', async (t) => {
  t.same(effectiveResources({}, engine), DEFAULT_RESOURCES)
  t.same(effectiveResources({}, { cpus: 1, memoryBytes: 1 }), { ...DEFAULT_RESOURCES, cpus: 1 })
  t.same(effectiveResources({ cpus: 0.5, pids: 100 }, engine), { memoryBytes: DEFAULT_RESOURCES.memoryBytes, cpus: 0.5, pids: 100 })
})

t.test('a boot test\'s guest must fit in the container with 512 MiB to spare', async (t) => {
  const on = { enabled: true, mode: 'gate' as const, memoryMiB: 2048 }
  t.same(bootTestProblems({}, on), [], '2.5 GiB fits the 4 GiB default')
  t.same(bootTestProblems({ memoryBytes: 1024 ** 3 }, { ...on, enabled: false }), [], 'not enabled: nothing to fit')
  t.same(bootTestProblems({ memoryBytes: 2560 * 1024 ** 2 }, on), [], 'exactly guest + 512 MiB')
  t.match(bootTestProblems({ memoryBytes: 2 * 1024 ** 3 }, on), [{
    field: 'bootTest.memoryMiB', message: /2048 MiB guest needs 2\.5 GiB .*gives 2\.0 GiB/
  }])
})
