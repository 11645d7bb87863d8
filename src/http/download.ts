import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ByteRange } from '../artifacts/artifact-store.js'
import type { ArtifactService, StoredFile } from '../artifacts/artifact-service.js'
import { contentType } from '../artifacts/publisher.js'
import { hasTokens } from '../config.js'
import { errors } from '../errors.js'
import { notModified } from './etag.js'

// Sends one stored file with what download tools expect: HEAD, a single
// byte range (curl -C -, resumed downloads), validators for caches, and an
// attachment disposition so that browsers never render a build output.

/** One range of `bytes=a-b`, `bytes=a-` or `bytes=-n`; undefined means "send it all". */
export function parseRange (header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  // Several ranges, or another unit: answering 200 with the whole file is allowed.
  if (!m || (m[1] === '' && m[2] === '')) return undefined
  let start: number
  let end: number
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0) return 'unsatisfiable'
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
    if (m[2] !== '' && Number(m[2]) < start) return undefined
  }
  if (start >= size || !Number.isSafeInteger(start)) return 'unsatisfiable'
  return { start, end }
}

/**
 * Published files never change. Behind tokens, though, a shared cache must
 * not keep one (RFC 9111 §3.5: `public` would let it answer callers without
 * a token): then only the caller's own cache may, unless the stream's builds
 * are public anyway.
 */
export function cacheControl (file: Pick<StoredFile, 'mutable'>, restricted: boolean) {
  if (file.mutable) return restricted ? 'private, no-cache' : 'no-cache'
  return `${restricted ? 'private' : 'public'}, max-age=31536000, immutable`
}

const disposition = (filename: string) => `attachment; filename="${filename.replace(/["\\]/g, '_')}"`

export async function sendStoredFile (request: FastifyRequest, reply: FastifyReply, service: ArtifactService, file: StoredFile) {
  const st = file.stat
  const etag = file.etag ?? st.etag
  reply
    .header('etag', etag)
    .header('last-modified', st.lastModified.toUTCString())
    .header('accept-ranges', 'bytes')
    .header('cache-control', cacheControl(file, hasTokens(request.server.core.config) && !request.publicRead))
    .header('content-disposition', disposition(file.filename))
    .header('x-content-type-options', 'nosniff')
    .type(contentType(file.filename))
  if (notModified(request, { etag, 'last-modified': st.lastModified.toUTCString() })) return reply.code(304).send()
  const ifRange = request.headers['if-range']
  const range = ifRange === undefined || ifRange === etag ? parseRange(request.headers.range, st.size) : undefined
  if (range === 'unsatisfiable') throw errors.rangeNotSatisfiable(st.size)
  const length = range ? range.end - range.start + 1 : st.size
  reply.header('content-length', String(length))
  if (range) reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${st.size}`)
  if (request.method === 'HEAD') return reply.send()
  const obj = await service.open(file.key, range)
  if (!obj) throw errors.artifactNotFound(`${file.filename} is no longer in the artifact store`)
  return reply.send(obj.body)
}
