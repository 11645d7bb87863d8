import t from 'tap'
import { basearch } from '../../src/cosa/basearch.js'

// Engines, the kernel and Node name architectures differently; builds and the
// store use cosa's names.

t.test('every name of the four arches cosa builds maps to its basearch', async (t) => {
  const cases: Array<[string, string]> = [
    ['x86_64', 'x86_64'], ['amd64', 'x86_64'], ['x64', 'x86_64'], ['AMD64', 'x86_64'],
    ['aarch64', 'aarch64'], ['arm64', 'aarch64'],
    ['s390x', 's390x'],
    ['ppc64le', 'ppc64le'], ['ppc64', 'ppc64le']
  ]
  for (const [name, arch] of cases) t.equal(basearch(name), arch, name)
  t.equal(basearch('riscv64'), 'riscv64', 'an arch cosa does not know keeps its name')
})
