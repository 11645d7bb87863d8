import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod'
import { errors, isServiceError, type ServiceError } from '../errors.js'
import { tagReply } from './request-log.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The body a route takes when it is not JSON (named in its 415). */
    bodyType?: string
  }
}

// One place turns every failure into `{code, message}`. Client mistakes get a
// specific 4xx naming the field; anything else is a 500 whose details stay in
// the server log.

/** The Content-Type the client sent, cut short: it is echoed in the answer. */
export function sentType (request: FastifyRequest): string {
  const type = request.headers['content-type']
  return typeof type === 'string' ? type.slice(0, 100) : ''
}

function toServiceError (err: FastifyError, request: FastifyRequest): ServiceError {
  if (isServiceError(err)) return err
  if (hasZodFastifySchemaValidationErrors(err)) {
    const detail = err.validation.slice(0, 5).map((v) => {
      const where = `${err.validationContext ?? 'request'}${v.instancePath.replace(/\/$/, '')}`
      return `${where}: ${v.message}`
    }).join('; ')
    return errors.invalidRequest(detail)
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return errors.payloadTooLarge(request.routeOptions.bodyLimit)
    // fastify 5's message is only "Unsupported Media Type": name what the client sent.
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return errors.unsupportedMediaType(sentType(request), request.routeOptions.config.bodyType)
    // JSON itself is parsed, and refused with its reason, in json-body.ts.
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH': return errors.invalidRequest(`body: ${err.message}`)
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return errors.clientError(err.statusCode, err.message)
  }
  return errors.internal()
}

/**
 * The methods routes take at each path pattern, so that a known path asked
 * with another method is a 405 naming them (RFC 9110 §15.5.6), not a 404.
 */
function methodsByPath (app: FastifyInstance) {
  const routes: Array<{ pattern: RegExp, methods: Set<string> }> = []
  app.addHook('onRoute', (route) => {
    if (route.url.includes('*')) return
    const source = route.url.split('/').map((part) => part.startsWith(':') ? '[^/]+' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('/')
    let entry = routes.find((r) => r.pattern.source === `^${source}$`)
    if (!entry) routes.push(entry = { pattern: new RegExp(`^${source}$`), methods: new Set() })
    for (const m of [route.method].flat()) entry.methods.add(m)
  })
  return (path: string) => [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => [...r.methods]))].sort()
}

type AnswerHook = (request: FastifyRequest, reply: FastifyReply, done: () => void) => void

export interface ErrorHandlerOptions {
  /** onResponse hooks of the not-found handler's answers alone (the metrics' count of them). */
  notFoundOnResponse?: AnswerHook[]
}

export default fp(async function errorHandler (app: FastifyInstance, opts: ErrorHandlerOptions) {
  const allowed = methodsByPath(app)
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const out = toServiceError(err, request)
    // A 5xx names the request's id: the line in the server log to look for.
    const message = out.statusCode >= 500 ? `${out.message} (request id ${request.id})` : out.message
    if (out.statusCode >= 500) request.log.error({ err }, 'request failed')
    request.rejection = { code: out.code, message }
    tagReply(request, reply)
    return reply.code(out.statusCode).headers(out.headers).send({ code: out.code, message })
  })
  // fastify's types name preValidation and preHandler only, but it adds
  // every lifecycle hook given here to the not-found handler's own.
  const notFoundHooks = { onResponse: opts.notFoundOnResponse ?? [] } as Parameters<typeof app.setNotFoundHandler>[0]
  app.setNotFoundHandler(notFoundHooks, (request, reply) => {
    const path = request.url.split('?')[0] ?? ''
    const methods = allowed(path)
    const err = methods.length ? errors.methodNotAllowed(request.method, path, methods) : errors.routeNotFound(request.method, path)
    request.rejection = { code: err.code, message: err.message }
    tagReply(request, reply)
    return reply.code(err.statusCode).headers(err.headers).send({ code: err.code, message: err.message })
  })
}, { name: 'error-handler' })
