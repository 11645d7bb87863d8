import { lchown, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { serializeBuildsJson, type BuildsJson } from '../cosa/builds-json.js'
import type { Meta } from '../cosa/meta.js'
import type { WorkspaceSync } from '../executor/executor.js'
import { METADATA_FILES, type Publisher } from './publisher.js'
import { buildKey } from './store-layout.js'

// Before a build, the workdir learns what the store has, as `cosa buildfetch`
// does in the Fedora CoreOS pipeline: builds.json, and the latest build's
// meta.json, commitmeta.json and commit object, with builds/latest pointing at
// it. That is all cosa's change detection reads, so a fresh, wiped or pruned
// workdir still ends `unchanged` when nothing changed. Images stay in the
// store. The store is the record, always: a build directory it does not list
// (a build whose image step, publish or container failed half-way) is
// removed, and builds/latest never names one, or cosa would take the
// leftover as "nothing changed" and a retry would report a build without
// its images.

export interface SyncResult {
  /** The store's latest build for the arch, now the workdir's builds/latest. */
  synced?: string
  /** Build directories the store does not list, removed. */
  removed: string[]
  /** The build ids the store lists. */
  published: ReadonlySet<string>
  /** The build ids the store lists with this arch (another arch of an id may still be built: `cosa build --version`). */
  publishedArch: ReadonlySet<string>
  /** The store's latest build for the arch, as builds/latest now has it. */
  latest?: Meta
  /** What of the workdir this sync decides, for an engine that keeps its own copy of it. */
  workspace: WorkspaceSync
}

/**
 * The files the sync writes (present or not), and the build directories that
 * may stay; of a build listed without this arch, the arch's directory is
 * one the sync removed (a leftover of an attempt that never published).
 */
function workspaceOf (index: BuildsJson | undefined, entry: { id: string } | undefined, arch: string): WorkspaceSync {
  const dir = entry && `builds/${entry.id}/${arch}`
  const others = (index?.builds ?? []).filter((b) => !b.arches.includes(arch)).map((b) => `builds/${b.id}/${arch}`)
  return {
    paths: ['builds/builds.json', 'builds/latest', ...dir ? ['meta.json', ...METADATA_FILES].map((f) => `${dir}/${f}`) : [], ...others],
    prune: { dir: 'builds', keep: (index?.builds ?? []).map((b) => b.id) }
  }
}

export async function syncWorkdir (publisher: Publisher, stream: string, workdir: string, arch: string): Promise<SyncResult> {
  const store = publisher.store
  const index = await publisher.readBuildsJson(stream)
  const entry = index?.builds.find((b) => b.arches.includes(arch))
  const builds = join(workdir, 'builds')
  const meta = entry && await store.getBytes(buildKey(stream, entry.id, arch, 'meta.json'))
  if (entry && !meta) throw new Error(`the store lists build ${entry.id} (${arch}) but has no meta.json for it`)
  const published = new Set(index?.builds.map((b) => b.id))
  const publishedArch = new Set(index?.builds.filter((b) => b.arches.includes(arch)).map((b) => b.id))
  const workspace = workspaceOf(index, entry, arch)
  if (!index && !await lstat(builds).catch(() => undefined)) return { removed: [], published, publishedArch, workspace }

  // New files belong to whoever owns the workdir (the image's user).
  const owner = await stat(workdir)
  const own = (path: string) => lchown(path, owner.uid, owner.gid)
  await realDir(builds, own)
  const removed = await removeUnlisted(builds, published)
  // A listed build without this arch: an arch directory there never published (its attempt failed).
  for (const id of published) {
    if (!publishedArch.has(id) && (await lstat(join(builds, id)).catch(() => undefined))?.isDirectory()) {
      await rm(join(builds, id, arch), { recursive: true, force: true })
    }
  }
  if (!entry || !meta) {
    // Nothing published for this arch: nothing in the workdir may claim a build.
    await rm(join(builds, 'latest'), { recursive: true, force: true })
    if (index) await writeOwned(join(builds, 'builds.json'), serializeBuildsJson(index), own)
    else await rm(join(builds, 'builds.json'), { force: true })
    return { removed, published, publishedArch, workspace }
  }
  const latest = JSON.parse(meta.toString('utf8')) as Meta
  const localLatest = await readlink(join(builds, 'latest')).catch(() => undefined)
  const localMeta = await readFile(join(builds, entry.id, arch, 'meta.json')).catch(() => undefined)
  if (localLatest === entry.id && localMeta?.equals(meta)) return { removed, published, publishedArch, latest, workspace }

  for (const dir of [join(builds, entry.id), join(builds, entry.id, arch)]) await realDir(dir, own)
  const files: Array<[string, Buffer | undefined]> = [['meta.json', meta]]
  for (const file of METADATA_FILES) files.push([file, await store.getBytes(buildKey(stream, entry.id, arch, file))])
  for (const [file, bytes] of files) {
    if (bytes === undefined) continue
    await writeOwned(join(builds, entry.id, arch, file), bytes, own)
  }
  await writeOwned(join(builds, 'builds.json'), serializeBuildsJson(index!), own)
  const link = join(builds, `.latest.${process.pid}`)
  await rm(link, { force: true })
  await symlink(entry.id, link)
  await own(link)
  if ((await lstat(join(builds, 'latest')).catch(() => undefined))?.isDirectory()) {
    await rm(join(builds, 'latest'), { recursive: true })
  }
  await rename(link, join(builds, 'latest'))
  return { synced: entry.id, removed, published, publishedArch, latest, workspace }
}

async function removeUnlisted (builds: string, listed: ReadonlySet<string>) {
  const removed: string[] = []
  for (const entry of await readdir(builds, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.') || listed.has(entry.name)) continue
    await rm(join(builds, entry.name), { recursive: true, force: true })
    removed.push(entry.name)
  }
  return removed.sort()
}

// The build container owns the workdir and may have left symlinks anywhere
// in it. The service follows none: a directory on the way must be a real one
// (a symlink there is removed, never followed), and files are created afresh.
async function realDir (path: string, own: (path: string) => Promise<void>) {
  const st = await lstat(path).catch(() => undefined)
  if (st?.isDirectory()) return
  if (st) await rm(path, { recursive: true, force: true })
  await mkdir(path)
  await own(path)
}

async function writeOwned (path: string, bytes: Buffer, own: (path: string) => Promise<void>) {
  const tmp = `${path}.cosa-buildd-tmp`
  await rm(tmp, { recursive: true, force: true })
  await writeFile(tmp, bytes, { flag: 'wx' })
  await own(tmp)
  await rename(tmp, path)
}
