import { createHash } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fresh from 'fresh'

// Cheap polling: a representation's entity tag is a hash of the bytes sent,
// so it changes exactly when the answer does (a build's state, queue
// position, result), and a request whose If-None-Match names it gets 304
// with no body.

const tagOf = (payload: string) => `"${createHash('sha1').update(payload).digest('base64url')}"`

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

interface Tagged { body: string, etag: string }

// The serialized form of values that never change (a finished build as the
// build service keeps it), by identity: a poll of such a value costs no
// serializing or hashing after the first.
const serialized = new WeakMap<object, Tagged>()

function serialize (reply: FastifyReply, value: object): Tagged {
  // The route's serializer (src/http/serializer.ts) makes strings.
  const body = reply.serialize(value) as string
  return { body, etag: tagOf(body) }
}

/**
 * Sends `value` through the route's response schema with its entity tag, or
 * 304 when the request already has it. `immutable`: the caller keeps this
 * very object for as long as it stays true (see FinishedBuilds).
 */
export function sendTagged (request: FastifyRequest, reply: FastifyReply, value: object, immutable = false) {
  let tagged = immutable ? serialized.get(value) : undefined
  if (tagged === undefined) {
    tagged = serialize(reply, value)
    if (immutable) serialized.set(value, tagged)
  }
  reply.header('etag', tagged.etag)
  if (notModified(request, tagged)) return reply.code(304).send()
  return reply.type('application/json; charset=utf-8').send(tagged.body)
}
