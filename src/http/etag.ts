import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

// Cheap polling: routes marked `etag` answer with an entity tag of the body
// they send, and a request whose If-None-Match names it gets 304 with no body.
// The tag is taken from the serialized bytes, so it changes exactly when the
// answer does (a build's state, queue position, result).

declare module 'fastify' {
  interface FastifyContextConfig {
    etag?: boolean
  }
}

const tagOf = (payload: string | Buffer) => `"${createHash('sha1').update(payload).digest('base64url')}"`

/** RFC 9110 §13.1.2: If-None-Match compares weakly; `*` matches any current representation. */
export function noneMatch (header: string | undefined, etag: string) {
  if (header === undefined) return false
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '')
  return header.split(',').some((tag) => tag.trim() === '*' || opaque(tag) === opaque(etag))
}

async function onSend (request: FastifyRequest, reply: FastifyReply, payload: unknown) {
  if (!request.routeOptions.config.etag || reply.statusCode !== 200) return payload
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload
  const etag = tagOf(payload)
  reply.header('etag', etag)
  if (!noneMatch(request.headers['if-none-match'], etag)) return payload
  reply.code(304).removeHeader('content-type').removeHeader('content-length')
  return ''
}

export default fp(async function etag (app: FastifyInstance) {
  app.addHook('onSend', onSend)
}, { name: 'etag' })
