import { jsonSchemaTransformObject } from 'fastify-type-provider-zod'
import { metaSchema } from '../cosa/meta.js'

// Some routes do not speak plain JSON objects, which the zod schemas cannot
// say: the log is text/plain, downloads are bytes whose type follows the file
// name, and meta.json (served and posted verbatim) is described by cosa's own
// schema rather than by ours.

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
  const downloads: Record<string, string> = {
    '/v1/builds/{id}/artifacts/{name}': '*/*',
    '/v1/streams/{stream}/builds/builds.json': 'application/json',
    '/v1/streams/{stream}/builds/{buildId}/{file}': '*/*',
    '/v1/streams/{stream}/builds/{buildId}/{arch}/{file}': '*/*'
  }
  for (const [path, type] of Object.entries(downloads)) {
    const item = doc.paths[path]
    if (!item) continue
    for (const method of ['get', 'head']) {
      const responses = item[method]?.responses
      if (!responses) continue
      for (const status of ['200', '206']) {
        const bytes = { type: 'string', format: 'binary' }
        responses[status] = method === 'head'
          ? { description: responses[status].description }
          : { description: responses[status].description, content: { [type]: { schema: bytes } } }
      }
      responses['304'] = { description: 'not modified (If-None-Match matched the ETag)' }
    }
  }
  return doc
}
