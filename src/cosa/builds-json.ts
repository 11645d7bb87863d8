// builds/builds.json with cosa's rules (src/cosalib/builds.py): newest first,
// one entry per build id with its arches, schema-version 1.x. Keys this
// service does not know (tags, policy-cleanup) are kept as they are.

export interface BuildsJsonEntry {
  id: string
  arches: string[]
  [key: string]: unknown
}

export interface BuildsJson {
  'schema-version': string
  builds: BuildsJsonEntry[]
  timestamp: string
  [key: string]: unknown
}

export const SCHEMA_VERSION = '1.0.0'

const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z')

export const emptyBuildsJson = (now: Date): BuildsJson =>
  ({ 'schema-version': SCHEMA_VERSION, builds: [], timestamp: rfc3339(now) })

/** Parses and checks the shape; throws with the reason, as cosa refuses other major versions. */
export function parseBuildsJson (text: string): BuildsJson {
  const doc = JSON.parse(text) as BuildsJson
  const version = typeof doc?.['schema-version'] === 'string' ? doc['schema-version'] : '0.0.1'
  if (version.split('.')[0] !== '1') throw new Error(`builds.json schema-version ${version} is not 1.x`)
  if (!Array.isArray(doc.builds) || !doc.builds.every((b) => typeof b?.id === 'string' && Array.isArray(b.arches))) {
    throw new Error('builds.json has no valid builds list')
  }
  return doc
}

/** insert_build: a new id goes first; a known id gains the arch. */
export function insertBuild (doc: BuildsJson, id: string, arch: string, now: Date): BuildsJson {
  const builds = doc.builds.map((b) => ({ ...b, arches: [...b.arches] }))
  const entry = builds.find((b) => b.id === id)
  if (entry) {
    if (!entry.arches.includes(arch)) entry.arches.push(arch)
  } else {
    builds.unshift({ id, arches: [arch] })
  }
  return { ...doc, builds, timestamp: rfc3339(now) }
}

export function removeBuilds (doc: BuildsJson, ids: ReadonlySet<string>, now: Date): BuildsJson {
  return { ...doc, builds: doc.builds.filter((b) => !ids.has(b.id)), timestamp: rfc3339(now) }
}

export const latestBuild = (doc: BuildsJson | undefined) => doc?.builds[0]

export const serializeBuildsJson = (doc: BuildsJson) => Buffer.from(JSON.stringify(doc, null, 2) + '\n')
