import { execa } from 'execa'
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'

// Each stream's config repository is mirrored by the service and mounted
// read-only into the build container, so a build needs no network to get its
// config, and every build records the exact commit it built.

export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

// The URL was checked before git sees it (config-url.ts); these keep git from
// going anywhere else on its own: no ext:: or other transports, and no
// redirect to a host nobody checked.
const GIT_ENV = {
  GIT_TERMINAL_PROMPT: '0',
  GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_ALLOW_PROTOCOL: 'https:http:ssh:git:file',
  GIT_PROTOCOL_FROM_USER: '0',
  GIT_CONFIG_COUNT: '1',
  GIT_CONFIG_KEY_0: 'http.followRedirects',
  GIT_CONFIG_VALUE_0: 'false'
}

async function git (args: string[], timeoutMs: number) {
  try {
    const { stdout } = await execa('git', args, { env: GIT_ENV, timeout: timeoutMs, stdin: 'ignore' })
    return stdout.trim()
  } catch (err) {
    const e = err as { stderr?: string, timedOut?: boolean, shortMessage?: string }
    if (e.timedOut) throw new ConfigError(`git ${args[0] === '-C' ? args[2] : args[0]} timed out after ${timeoutMs} ms`)
    const detail = (e.stderr ?? e.shortMessage ?? '').split('\n').filter(Boolean).slice(-2).join('; ')
    throw new ConfigError(detail || 'git failed')
  }
}

const exists = (path: string) => stat(path).then(() => true, () => false)

/**
 * Kept inside the mirror, which is mounted into build containers. The mirror
 * belongs to the service's user; git refuses to clone such a repository for
 * any other uid (real cosa runs as uid 1000) unless its global config says
 * safe.directory. GIT_CONFIG_GLOBAL reaches the upload-pack side of a
 * file:// clone, where GIT_CONFIG_COUNT does not.
 */
export const MIRROR_GITCONFIG = 'cosa-buildd.gitconfig'

export class ConfigMirror {
  readonly #timeoutMs: number

  constructor (opts: { timeoutMs: number }) {
    this.#timeoutMs = opts.timeoutMs
  }

  /** Clones or updates the bare mirror at `dir` from `url`. */
  async sync (url: string, dir: string) {
    if (!await exists(dir)) {
      await mkdir(dirname(dir), { recursive: true })
      const tmp = `${dir}.tmp`
      await rm(tmp, { recursive: true, force: true })
      await git(['clone', '--quiet', '--mirror', url, tmp], this.#timeoutMs)
      await rename(tmp, dir)
    } else {
      await git(['-C', dir, 'remote', 'set-url', 'origin', url], this.#timeoutMs)
      await git(['-C', dir, 'fetch', '--quiet', '--prune', '--force', 'origin'], this.#timeoutMs)
    }
    await writeFile(join(dir, MIRROR_GITCONFIG), '[safe]\n\tdirectory = *\n')
  }

  /** The full commit id `commit` (when given) or `ref` names in the mirror. */
  async resolve (dir: string, ref: string, commit?: string) {
    const rev = commit ?? ref
    const candidates = commit ? [`${commit}^{commit}`] : [`refs/heads/${ref}^{commit}`, `refs/tags/${ref}^{commit}`, `${ref}^{commit}`]
    for (const candidate of candidates) {
      try {
        return await git(['-C', dir, 'rev-parse', '--verify', '--quiet', '--end-of-options', candidate], this.#timeoutMs)
      } catch {}
    }
    throw new ConfigError(commit ? `commit ${commit} is not in the config repository` : `ref ${JSON.stringify(rev)} is not in the config repository`)
  }
}
