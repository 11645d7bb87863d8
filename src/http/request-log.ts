import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'

// Every request has an id: the caller's X-Request-Id when it is a sane token
// (a proxy's or a pipeline's, so one id follows a request through every
// hop), else a new one: this process's random prefix and a counter, unique
// across restarts and replicas and cheaper than a UUID per request. It is on every answer and every log line of the
// request (fastify's per-request logger binds it as `reqId`).
//
// One log line per answer, written when it is sent. Reads that succeed (GET
// and HEAD below 400, the polling that CI fleets do every few seconds) are
// logged at `debug`; everything that changes something or is refused at
// `info`. Counting reads is the metrics' job: a log line per poll costs a
// third of the API's throughput (docs/benchmarks.md) and buries the lines
// that matter.

const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/

/** Query parameters whose values never reach the log (a short-lived event token; clients also try long-lived ones). */
const SECRET_PARAM = /^(access_?token|token|key|secret|password|signature|x-amz-[a-z-]+)$/i

export function redactUrl (url: string) {
  const q = url.indexOf('?')
  if (q < 0) return url
  const params = new URLSearchParams(url.slice(q + 1))
  for (const name of [...params.keys()]) if (SECRET_PARAM.test(name)) params.set(name, '[redacted]')
  return `${url.slice(0, q)}?${params.toString()}`
}

export const REQUEST_ID_HEADER = 'x-request-id'

const PREFIX = randomBytes(6).toString('base64url')
let issued = 0

/** fastify's genReqId: the caller's id when valid, else a new one. */
export function requestId (req: IncomingMessage): string {
  const sent = req.headers[REQUEST_ID_HEADER]
  return typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : `${PREFIX}-${(++issued).toString(36)}`
}

declare module 'fastify' {
  interface FastifyRequest {
    /** What an error answer says (set by the error handler), for its log line. */
    rejection?: { code: string, message: string }
  }
}

const quiet = (method: string, status: number) => status < 400 && (method === 'GET' || method === 'HEAD')

/** Puts the request's id on its answer: the error and not-found handlers call it for the answers no route handler gives. */
export function tagReply (request: FastifyRequest, reply: FastifyReply) {
  reply.header(REQUEST_ID_HEADER, request.id)
}

// The id goes on the answer inside each route's handler, wrapped once when
// the route is added, rather than in an onRequest hook: a hook puts fastify's
// hook runner on every request, and on an open server (no token checks) this
// was the only onRequest hook there was (docs/benchmarks.md, the 304).
function tagging (handler: RouteOptions['handler']): RouteOptions['handler'] {
  return function tagged (this: FastifyInstance, request, reply) {
    reply.header(REQUEST_ID_HEADER, request.id)
    return handler.call(this, request, reply)
  }
}

function logAnswer (request: FastifyRequest, reply: FastifyReply, done: () => void) {
  const status = reply.statusCode
  const level = quiet(request.method, status) ? 'debug' : 'info'
  // pino's loggers can say; fastify's no-op logger (logger: false) cannot, and logs nothing anyway.
  if ((request.log as { isLevelEnabled?: (l: string) => boolean }).isLevelEnabled?.(level) === false) return done()
  request.log[level]({
    method: request.method,
    url: redactUrl(request.url),
    route: request.routeOptions.url,
    status,
    ...request.rejection,
    ms: Math.round(reply.elapsedTime * 10) / 10
  }, 'answered')
  done()
}

export default fp(async function requestLog (app: FastifyInstance) {
  app.decorateRequest('rejection', undefined)
  app.addHook('onRoute', (route) => { route.handler = tagging(route.handler) })
  app.addHook('onResponse', logAnswer)
}, { name: 'request-log' })
