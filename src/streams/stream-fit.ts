import type { BootTestSetting, StreamResources } from '../builds/model.js'
import type { EngineCapacity } from '../executor/executor.js'

// Whether a stream's settings fit the engine that runs its builds. A limit
// the engine cannot give is the stream's mistake: refused at registration
// while the engine answers, and a build's `invalid_settings`, never an
// infrastructure failure, should the engine change later.

export const DEFAULT_RESOURCES = { memoryBytes: 4 * 1024 ** 3, cpus: 2, pids: 4096 } as const

// The boot test's guest RAM (cosa kola run --qemu-memory), and what qemu
// needs besides it in the container: TCG's translation cache (capped at
// 256 MiB by cosa-lite) and qemu itself.
export const BOOT_TEST_DEFAULT_MEMORY_MIB = 2048
export const BOOT_TEST_OVERHEAD_MIB = 512

export interface SettingProblem {
  /** The stream registration's field, e.g. resources.cpus. */
  field: string
  message: string
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`

export function resourceProblems (resources: StreamResources, capacity: EngineCapacity): SettingProblem[] {
  const problems: SettingProblem[] = []
  if (resources.cpus !== undefined && resources.cpus > capacity.cpus) {
    problems.push({ field: 'resources.cpus', message: `${resources.cpus} is more than the ${capacity.cpus} CPUs of the Docker engine` })
  }
  if (resources.memoryBytes !== undefined && resources.memoryBytes > capacity.memoryBytes) {
    problems.push({
      field: 'resources.memoryBytes',
      message: `${gib(resources.memoryBytes)} is more than the ${gib(capacity.memoryBytes)} of memory of the Docker engine`
    })
  }
  return problems
}

/** A boot test whose guest does not fit in the build container's memory. */
export function bootTestProblems (resources: StreamResources, bootTest: BootTestSetting | undefined): SettingProblem[] {
  if (!bootTest?.enabled) return []
  const needed = (bootTest.memoryMiB + BOOT_TEST_OVERHEAD_MIB) * 1024 ** 2
  const memory = resources.memoryBytes ?? DEFAULT_RESOURCES.memoryBytes
  if (memory >= needed) return []
  return [{
    field: 'bootTest.memoryMiB',
    message: `a ${bootTest.memoryMiB} MiB guest needs ${gib(needed)} of container memory (guest + ${BOOT_TEST_OVERHEAD_MIB} MiB); ` +
      `resources.memoryBytes gives ${gib(memory)}`
  }]
}

/** The limits a build container gets: the stream's, else the defaults, the CPU default no more than the engine has. */
export function effectiveResources (resources: StreamResources, capacity: EngineCapacity) {
  return {
    memoryBytes: resources.memoryBytes ?? DEFAULT_RESOURCES.memoryBytes,
    cpus: resources.cpus ?? Math.min(DEFAULT_RESOURCES.cpus, capacity.cpus),
    pids: resources.pids ?? DEFAULT_RESOURCES.pids
  }
}

export const describeProblems = (problems: readonly SettingProblem[]) =>
  problems.map((p) => `${p.field}: ${p.message}`).join('; ')
