import { jsonSchemaTransformObject } from 'fastify-type-provider-zod'
import { metaSchema } from '../cosa/meta.js'

// Three routes do not speak plain JSON objects, which the zod schemas cannot
// say: the log is text/plain, and meta.json (served and posted verbatim) is
// described by cosa's own schema rather than by ours.

type Doc = Record<string, any>
type TransformInput = Parameters<typeof jsonSchemaTransformObject>[0]

const { $schema: _draft, $id: _id, ...cosaMeta } = metaSchema

export function transformObject (input: TransformInput) {
  const doc = jsonSchemaTransformObject(input) as Doc
  if (!doc.paths) return doc
  doc.components.schemas.CosaMeta = {
    ...cosaMeta,
    description: 'cosa\'s meta.json, schema v1 (coreos-assembler src/v1.json)'
  }
  const ref = { $ref: '#/components/schemas/CosaMeta' }
  const log = doc.paths['/v1/builds/{id}/log']?.get?.responses?.['200']
  if (log) log.content = { 'text/plain': { schema: { type: 'string' } } }
  const meta = doc.paths['/v1/builds/{id}/meta.json']?.get?.responses?.['200']
  if (meta) meta.content = { 'application/json': { schema: ref } }
  const result = doc.paths['/v1/builds/{id}/result']?.post?.requestBody
  if (result) result.content = { 'application/json': { schema: ref } }
  return doc
}
