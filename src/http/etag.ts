import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import fresh from 'fresh'

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

/**
 * RFC 9110 §13.1: If-None-Match (weak comparison, `*`), or If-Modified-Since
 * without it, as the `fresh` library reads them. A request's
 * `Cache-Control: no-cache` is addressed to caches, not to the origin (RFC
 * 9111 §5.2.1.4), and fetch() sends it with every conditional request: it
 * must not turn a 304 into a 200 here, so `fresh` sees the conditions alone.
 */
export function notModified (request: FastifyRequest, current: { etag: string, 'last-modified'?: string }) {
  const { 'if-none-match': inm, 'if-modified-since': ims } = request.headers
  if (inm === undefined && ims === undefined) return false
  return fresh({ 'if-none-match': inm, 'if-modified-since': ims }, current)
}

async function onSend (request: FastifyRequest, reply: FastifyReply, payload: unknown) {
  if (!request.routeOptions.config.etag || reply.statusCode !== 200) return payload
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload
  const etag = tagOf(payload)
  reply.header('etag', etag)
  if (!notModified(request, { etag })) return payload
  reply.code(304).removeHeader('content-type').removeHeader('content-length')
  return ''
}

export default fp(async function etag (app: FastifyInstance) {
  app.addHook('onSend', onSend)
}, { name: 'etag' })
