import { Ajv, type ErrorObject } from 'ajv'
import { readFileSync } from 'node:fs'

// cosa's own meta.json schema (draft-07, verbatim from upstream). Ajv refuses
// the file as it is: upstream gives nested subschemas fragment-only `$id`s,
// some of them twice. Those `$id`s carry no constraints, so a copy without
// them validates exactly the same documents.

export const META_SCHEMA_PATH = new URL('./meta.schema.json', import.meta.url)

function withoutNestedIds (node: unknown, root = true): unknown {
  if (Array.isArray(node)) return node.map((n) => withoutNestedIds(n, false))
  if (node === null || typeof node !== 'object') return node
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(node)) {
    if (k === '$id' && !root) continue
    out[k] = withoutNestedIds(v, false)
  }
  return out
}

export const metaSchema = withoutNestedIds(JSON.parse(readFileSync(META_SCHEMA_PATH, 'utf8'))) as Record<string, unknown>

const validate = new Ajv({ allErrors: true, strict: false }).compile(metaSchema)

/** A cosa build id (`cosa build --version`), which is also its directory's name under builds/: unanchored, for larger patterns. */
export const COSA_BUILD_ID_PATTERN = '[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}'
export const COSA_BUILD_ID = new RegExp(`^${COSA_BUILD_ID_PATTERN}$`)

/** One entry of meta.json's `images` (the schema requires `images.ostree`). */
export interface MetaImage { path: string, sha256: string, size?: number }

export interface Meta {
  buildid: string
  name: string
  'ostree-commit': string
  'ostree-version': string
  'ostree-timestamp': string
  'coreos-assembler.basearch'?: string
  images: Record<string, MetaImage>
  [key: string]: unknown
}

const describe = (e: ErrorObject) => `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}` +
  (e.keyword === 'additionalProperties' ? ` (${String(e.params.additionalProperty)})` : '')

/** Problems with a meta.json document, empty when it is valid for cosa. */
export function metaProblems (doc: unknown): string[] {
  const problems = validate(doc) ? [] : (validate.errors ?? []).slice(0, 10).map(describe)
  const images = (doc as Meta | null)?.images
  if (problems.length === 0 && (typeof images !== 'object' || images === null || !images.ostree)) {
    problems.push('/images must have an "ostree" entry')
  }
  return problems
}
