import { randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { API_SOCKET_NAME } from './executor/docker/container-spec.js'

// Everything the service keeps on disk lives under one data directory.
// Stream names are validated (^[a-z0-9][a-z0-9._-]{0,62}$) before any path is
// made from them.

export class DataDir {
  readonly root: string

  constructor (root: string) {
    this.root = root
    // sun_path holds 108 bytes; fail now with the reason, not later with EINVAL.
    if (Buffer.byteLength(this.apiSocket) > 100) {
      throw new Error(`the data directory path is too long for the result socket (${this.apiSocket}); use a shorter dataDir`)
    }
    for (const dir of [this.streams, this.logs, this.apiSocketDir]) mkdirSync(dir, { recursive: true })
  }

  get database () { return join(this.root, 'cosa-buildd.db') }
  get streams () { return join(this.root, 'streams') }
  get logs () { return join(this.root, 'logs') }
  /** Holds only the API socket: it is bind-mounted into build containers. */
  get apiSocketDir () { return join(this.root, 'run', 'api') }
  get apiSocket () { return join(this.apiSocketDir, API_SOCKET_NAME) }

  /** `arch`: a multi-arch build's secondary arch, whose workdir is its own. */
  workdir (stream: string, arch?: string) { return join(this.streams, stream, arch === undefined ? 'work' : `work-${arch}`) }
  mirror (stream: string) { return join(this.streams, stream, 'config.git') }

  /** Names this installation in container labels, stable across restarts. */
  instanceId () {
    const path = join(this.root, 'instance-id')
    try {
      return readFileSync(path, 'utf8').trim()
    } catch {
      const id = randomUUID()
      writeFileSync(path, id + '\n', { flag: 'wx' })
      return id
    }
  }
}
