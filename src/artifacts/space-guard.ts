import { statfs } from 'node:fs/promises'
import type { ArtifactStore } from './artifact-store.js'

// Free space on the data directory and a local store, checked before a
// submit is admitted, before a build starts and before publishing. The answer
// is cached briefly: submits are many, and the numbers move slowly.

export interface SpaceCheck {
  ok: boolean
  message: string
}

const CACHE_MS = 1000

export class SpaceGuard {
  readonly #dataDir: string
  readonly #store: ArtifactStore
  readonly #minFreeBytes: number
  #cached: { at: number, check: SpaceCheck } | undefined

  constructor (deps: { dataDir: string, store: ArtifactStore, minFreeBytes: number }) {
    this.#dataDir = deps.dataDir
    this.#store = deps.store
    this.#minFreeBytes = deps.minFreeBytes
  }

  async check (): Promise<SpaceCheck> {
    const now = Date.now()
    if (this.#cached && now - this.#cached.at < CACHE_MS) return this.#cached.check
    const check = await this.#measure()
    this.#cached = { at: now, check }
    return check
  }

  async #measure (): Promise<SpaceCheck> {
    const fs = await statfs(this.#dataDir)
    const places: Array<[string, number | undefined]> = [
      ['data directory', fs.bavail * fs.bsize],
      ['artifact store', await this.#store.freeBytes()]
    ]
    for (const [what, free] of places) {
      if (free !== undefined && free < this.#minFreeBytes) {
        return {
          ok: false,
          message: `the ${what} has ${mib(free)} free, below the ${mib(this.#minFreeBytes)} this server keeps free; ` +
            'free some space (or lower storage.minFreeBytes) and try again'
        }
      }
    }
    return { ok: true, message: 'enough free space' }
  }
}

const mib = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(0)} MiB`
