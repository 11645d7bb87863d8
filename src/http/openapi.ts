import { jsonSchemaTransformObject } from 'fastify-type-provider-zod'
import { metaSchema } from '../cosa/meta.js'

// Some routes do not speak plain JSON objects, which the zod schemas cannot
// say: the log is text/plain, downloads are bytes whose type follows the file
// name, and meta.json (served and posted verbatim) is described by cosa's own
// schema rather than by ours.

type Doc = Record<string, any>
type TransformInput = Parameters<typeof jsonSchemaTransformObject>[0]

const COSA = 'CosaMeta'

/**
 * cosa's schema as components of this document. Upstream's `definitions`
 * become `CosaMeta.<name>` components (its `#/definitions/…` references would
 * not resolve here); its `default`s are dropped, since several do not satisfy
 * their own schema (`""` under `minLength: 1`) and none means anything to a
 * client; a `$ref` to an array definition keeps no `type: array` of its own,
 * and an array without `items` says `items: {}` (any item, as it meant).
 * The source stays cosa's file, unchanged.
 */
export function cosaMetaComponents (): Record<string, Doc> {
  const { $schema: _draft, $id: _id, definitions, ...root } = metaSchema as Doc
  const adapt = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(adapt)
    if (node === null || typeof node !== 'object') return node
    const out: Doc = {}
    for (const [key, value] of Object.entries(node)) {
      if (key === 'default') continue
      out[key] = key === '$ref' && typeof value === 'string'
        ? value.replace(/^#\/definitions\//, `#/components/schemas/${COSA}.`)
        : adapt(value)
    }
    if (out.type === 'array' && !out.items) {
      if (out.$ref) delete out.type
      else out.items = {}
    }
    return out
  }
  const components: Record<string, Doc> = {
    [COSA]: { ...adapt(root) as Doc, description: 'cosa\'s meta.json, schema v1 (coreos-assembler src/v1.json)' }
  }
  for (const [name, schema] of Object.entries(definitions ?? {})) components[`${COSA}.${name}`] = adapt(schema) as Doc
  return components
}

const refTo = (name: string) => `"#/components/schemas/${name}"`

/**
 * The zod provider emits every named schema twice, as read (`X`) and as
 * written (`XInput`). One name is kept for each: the input twin where it is
 * the same schema or the output is never used, and nothing no operation
 * reaches stays.
 */
function oneNamePerSchema (doc: Doc): Doc {
  let text = JSON.stringify(doc)
  const schemas = () => (JSON.parse(text) as Doc).components.schemas as Record<string, Doc>
  for (const name of Object.keys(schemas()).filter((n) => n.endsWith('Input'))) {
    const base = name.slice(0, -'Input'.length)
    const all = schemas()
    const same = all[base] !== undefined && JSON.stringify(all[base]) === JSON.stringify(all[name])
    const baseUsed = text.includes(refTo(base))
    if (all[base] !== undefined && !same && baseUsed) continue
    text = text.replaceAll(refTo(name), refTo(base))
    const next = JSON.parse(text) as Doc
    next.components.schemas[base] = next.components.schemas[name]
    delete next.components.schemas[name]
    text = JSON.stringify(next)
  }
  const out = JSON.parse(text) as Doc
  const reached = new Set<string>()
  const visit = (node: unknown) => {
    for (const [, name] of JSON.stringify(node).matchAll(/"#\/components\/schemas\/([^"]+)"/g)) {
      if (reached.has(name!)) continue
      reached.add(name!)
      visit(out.components.schemas[name!])
    }
  }
  visit(out.paths)
  for (const name of Object.keys(out.components.schemas)) if (!reached.has(name)) delete out.components.schemas[name]
  return out
}

export function transformObject (input: TransformInput) {
  const raw = jsonSchemaTransformObject(input) as Doc
  if (!raw.paths) return raw
  const doc = oneNamePerSchema(raw)
  Object.assign(doc.components.schemas, cosaMetaComponents())
  // GET and HEAD share a route, and so its operationId: HEAD gets its own.
  for (const item of Object.values(doc.paths) as Doc[]) {
    const id = item.head?.operationId
    if (typeof id === 'string') item.head = { ...item.head, operationId: id.replace(/^get/, 'head') }
  }
  const ref = { $ref: '#/components/schemas/CosaMeta' }
  const log = doc.paths['/v1/builds/{id}/log']?.get?.responses?.['200']
  if (log) log.content = { 'text/plain': { schema: { type: 'string' } } }
  const metrics = doc.paths['/metrics']?.get?.responses?.['200']
  if (metrics) metrics.content = { 'text/plain; version=0.0.4; charset=utf-8': { schema: { type: 'string' } } }
  const events = doc.paths['/v1/events']?.get?.responses?.['200']
  if (events) events.content = { 'text/event-stream': { schema: { type: 'string' } } }
  const meta = doc.paths['/v1/builds/{id}/meta.json']?.get?.responses?.['200']
  if (meta) meta.content = { 'application/json': { schema: ref } }
  const result = doc.paths['/v1/builds/{id}/result']?.post?.requestBody
  if (result) result.content = { 'application/json': { schema: ref } }
  doc.components.schemas.BuildsJson = BUILDS_JSON
  describeDownloads(doc)
  completeStatuses(doc)
  describeHeaders(doc)
  const report = doc.paths['/v1/builds/{id}/result']?.post
  // Build containers call these, with their build's token; no client should.
  if (report) report['x-internal'] = true
  const upload = doc.paths['/v1/builds/{id}/workdir']?.put
  if (upload) {
    upload['x-internal'] = true
    // Read as a stream by the handler: no body schema for fastify, and no http.bodyLimit.
    upload.requestBody = { required: true, content: { 'application/x-tar': { schema: { type: 'string', format: 'binary' } } } }
  }
  return doc
}

const errorAnswer = (description: string) =>
  ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } })

/** Statuses fastify or the error handler send on any route of a kind, which the routes' schemas leave out. */
function completeStatuses (doc: Doc) {
  for (const [path, item] of Object.entries(doc.paths) as Array<[string, Doc]>) {
    for (const operation of Object.values(item) as Doc[]) {
      const responses = operation?.responses as Record<string, Doc> | undefined
      if (!responses) continue
      const add = (status: string, description: string) => { responses[status] ??= errorAnswer(description) }
      if (path.includes('{')) add('414', 'a path segment is longer than 765 characters')
      if (operation.requestBody) {
        add('413', 'the body is larger than http.bodyLimit')
        add('415', 'the body is not application/json')
      }
      if (path.startsWith('/v1/builds/{id}/artifacts/')) add('409', 'the build has no published result')
      add('500', 'an internal error; the server log has the details')
    }
  }
}

const BUILDS_JSON = {
  type: 'object',
  description: 'cosa\'s builds/builds.json: builds newest first; keys cosa adds (tags, policy-cleanup) are kept',
  required: ['schema-version', 'builds', 'timestamp'],
  properties: {
    'schema-version': { type: 'string', examples: ['1.0.0'] },
    builds: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'arches'],
        properties: { id: { type: 'string' }, arches: { type: 'array', items: { type: 'string' } } }
      }
    },
    timestamp: { type: 'string', format: 'date-time' },
    tags: {
      type: 'array',
      items: { type: 'object', properties: { name: { type: 'string' }, target: { type: 'string' }, created: { type: 'string' } } }
    }
  }
}

// What a download's Content-Type can be (contentType in publisher.ts): JSON, or bytes.
const BYTES = { type: 'string', format: 'binary' }
const FILE_TYPES = {
  'application/json': { schema: {} },
  'application/x-tar': { schema: BYTES },
  'application/gzip': { schema: BYTES },
  'application/x-xz': { schema: BYTES },
  'application/octet-stream': { schema: BYTES }
}

function describeDownloads (doc: Doc) {
  const downloads: Record<string, Doc> = {
    '/v1/builds/{id}/artifacts/{name}': FILE_TYPES,
    '/v1/streams/{stream}/builds/builds.json': { 'application/json': { schema: { $ref: '#/components/schemas/BuildsJson' } } },
    '/v1/streams/{stream}/builds/{buildId}/{file}': FILE_TYPES,
    '/v1/streams/{stream}/builds/{buildId}/{arch}/{file}': FILE_TYPES
  }
  for (const [path, content] of Object.entries(downloads)) {
    for (const method of ['get', 'head']) {
      const responses = doc.paths[path]?.[method]?.responses
      if (!responses) continue
      for (const status of ['200', '206']) {
        const description = status === '200' ? 'the file' : 'the range asked for (Content-Range says which)'
        responses[status] = method === 'head' ? { description } : { description, content }
      }
      responses['304'] = { description: 'not modified (If-None-Match matched the ETag)' }
    }
  }
}

const header = (description: string, schema: Doc = { type: 'string' }) => ({ description, schema })
const FILE_HEADERS = {
  ETag: header('strong entity tag: the quoted sha256 of an artifact, or the store\'s version of a file'),
  'Last-Modified': header('when the store wrote the file'),
  'Accept-Ranges': header('bytes'),
  'Content-Length': header('bytes in this answer', { type: 'integer' }),
  'Content-Disposition': header('attachment; filename="…"'),
  'Cache-Control': header('immutable files for a year (private behind tokens); builds.json no-cache')
}
const ETAG = { ETag: header('entity tag of this answer: send it back as If-None-Match') }

const REQUEST_ID = { 'X-Request-Id': { $ref: '#/components/headers/RequestId' } }

/** The request id every operation takes and every answer carries (src/http/request-log.ts). */
function describeRequestId (doc: Doc) {
  const description = 'the request\'s id in the server log: the caller\'s when it matches the pattern, else a new one'
  const schema = { type: 'string', pattern: '^[A-Za-z0-9._:@/+=-]{1,128}$', examples: ['ci-job-4711.submit'] }
  doc.components.headers = { ...doc.components.headers, RequestId: { description, schema } }
  doc.components.parameters = {
    ...doc.components.parameters,
    RequestId: { name: 'X-Request-Id', in: 'header', required: false, description, schema }
  }
  for (const item of Object.values(doc.paths) as Doc[]) {
    for (const operation of Object.values(item) as Doc[]) {
      if (!operation?.responses) continue
      operation.parameters = [...(operation.parameters ?? []), { $ref: '#/components/parameters/RequestId' }]
    }
  }
}

/** The headers each answer carries, which the zod schemas cannot say. */
function describeHeaders (doc: Doc) {
  describeRequestId(doc)
  for (const [path, item] of Object.entries(doc.paths) as Array<[string, Doc]>) {
    for (const operation of Object.values(item) as Doc[]) {
      const responses = operation?.responses as Record<string, Doc> | undefined
      if (!responses) continue
      const add = (status: string, headers: Record<string, Doc>) => {
        if (responses[status]) responses[status].headers = { ...responses[status].headers, ...headers }
      }
      for (const status of Object.keys(responses)) add(status, REQUEST_ID)
      add('401', { 'WWW-Authenticate': header('Bearer realm="cosa-buildd"') })
      add('429', {
        'Retry-After': header('seconds until a submit is admitted again', { type: 'integer' }),
        'x-ratelimit-limit': header('submits a minute per token', { type: 'integer' }),
        'x-ratelimit-remaining': header('submits left this minute', { type: 'integer' }),
        'x-ratelimit-reset': header('seconds until the budget resets', { type: 'integer' })
      })
      add('503', { 'Retry-After': header('seconds to wait, when free space is low', { type: 'integer' }) })
      if (['getBuild', 'listBuilds', 'getStream'].includes(operation.operationId)) {
        add('200', ETAG)
        add('304', ETAG)
      }
      if (operation.operationId === 'submitBuild') {
        add('202', {
          Location: header('the build: /v1/builds/{id}'),
          'Idempotent-Replayed': header('true when an Idempotency-Key replayed an earlier answer')
        })
      }
      if (operation.operationId === 'getBuildLog') {
        add('200', { 'X-Log-Size': header('the log\'s size when the answer began: resume with ?offset=', { type: 'integer' }) })
      }
      if (path.startsWith('/v1/streams/{stream}/builds/') || path.startsWith('/v1/builds/{id}/artifacts/')) {
        add('200', FILE_HEADERS)
        add('206', { ...FILE_HEADERS, 'Content-Range': header('bytes start-end/size') })
        add('304', { ETag: FILE_HEADERS.ETag })
        add('416', { 'Content-Range': header('bytes */size') })
      }
    }
  }
}

