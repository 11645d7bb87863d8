import { execa } from 'execa'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import type { TestApp } from '../helpers.js'

// What a pipeline relies on in the store, read the way it reads it (the
// cosa layout routes, as `cosa buildfetch --url` would), with hashes taken
// by sha256sum rather than by our own code.

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

/** sha256sum's verdict on bytes, independent of node's crypto. */
export async function sha256sum (bytes: Buffer) {
  const dir = await mkdtemp(join(tmpdir(), 'cosa-buildd-sum-'))
  try {
    await writeFile(join(dir, 'f'), bytes)
    return (await execa('sha256sum', [join(dir, 'f')])).stdout.split(' ')[0]!
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

export async function layout (h: TestApp, stream: string, path: string) {
  const res = await h.app.inject({ method: 'GET', url: `/v1/streams/${stream}/builds/${path}` })
  return { status: res.statusCode, body: res.rawPayload, json: () => JSON.parse(res.body) }
}

export interface StoredBuild { id: string, meta: { buildid: string, images: Record<string, { path: string, sha256: string, size?: number }> } }

/**
 * The stream's builds.json and every build it lists, each checked whole:
 * its meta.json is served, and every image meta.json names is served with
 * the sha256 and size meta.json gives. Throws on the first inconsistency.
 */
export async function storedBuilds (h: TestApp, stream: string, arch = 'x86_64', checkImages = true): Promise<{ ids: string[], tags: string[], builds: StoredBuild[] }> {
  const index = await layout(h, stream, 'builds.json')
  if (index.status === 404) return { ids: [], tags: [], builds: [] }
  if (index.status !== 200) throw new Error(`builds.json: ${index.status}`)
  const doc = index.json() as { builds: Array<{ id: string }>, tags?: Array<{ target: string }> }
  const builds: StoredBuild[] = []
  for (const { id } of doc.builds) {
    const meta = await layout(h, stream, `${id}/${arch}/meta.json`)
    if (meta.status !== 200) throw new Error(`builds.json lists ${id}, but its meta.json is ${meta.status}`)
    const parsed = meta.json() as StoredBuild['meta']
    if (checkImages) {
      for (const [name, image] of Object.entries(parsed.images)) {
        const file = await layout(h, stream, `${id}/${arch}/${image.path}`)
        if (file.status !== 200) throw new Error(`build ${id}: image ${name} is ${file.status}`)
        if (sha256(file.body) !== image.sha256) throw new Error(`build ${id}: image ${name} does not hash as meta.json says`)
        if (image.size !== undefined && image.size !== file.body.length) throw new Error(`build ${id}: image ${name} has the wrong size`)
      }
    }
    builds.push({ id, meta: parsed })
  }
  return { ids: builds.map((b) => b.id), tags: (doc.tags ?? []).map((t) => t.target), builds }
}

/** Asserts that a finished `succeeded` build is whole in the store: every image it asked for, verified. */
export async function assertComplete (t: Test, h: TestApp, build: any, images: string[]) {
  t.equal(build.state, 'succeeded', `build ${build.id} succeeded (${build.reason ?? ''} ${build.message ?? ''})`)
  const { builds } = await storedBuilds(h, build.stream)
  const stored = builds.find((b) => b.id === build.result?.cosaBuildId)
  t.ok(stored, `the store lists ${build.result?.cosaBuildId}`)
  t.same(Object.keys(stored?.meta.images ?? {}).sort(), [...images].sort(), 'the stored meta.json has every image asked for')
  t.same(build.result.artifacts.map((a: { name: string }) => a.name).sort(), [...images].sort(), 'and so does the result')
  for (const name of images) {
    const image = stored!.meta.images[name]!
    const file = await layout(h, build.stream, `${stored!.id}/${build.result.arch}/${image.path}`)
    t.equal(await sha256sum(file.body), image.sha256, `${name}: sha256sum of the download matches meta.json`)
  }
}
