import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { hasTokens } from '../config.js'
import { errors } from '../errors.js'

// Bearer tokens with three ranks: read < submit < admin. Tokens are kept only
// as SHA-256 hashes and looked up by hash, so neither a timing difference nor
// a memory dump gives one away. With no tokens configured the server is
// loopback-only (server.ts enforces that) and every caller has every right.

export type Access = 'public' | 'read' | 'submit' | 'admin' | 'build'

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access
    /** A read of a stream's published builds: open to callers without a token when the stream says `publicRead`. */
    publishedBuilds?: boolean
    /** Takes a short-lived token from POST /v1/event-tokens as `?token=` (GET /v1/events alone). */
    queryToken?: boolean
  }
  interface FastifyRequest {
    /** Hash of the caller's token, or "anonymous"; scopes idempotency keys. */
    clientScope: string
    /** Served without a token because the stream is publicRead: shared caches may keep it. */
    publicRead: boolean
    /** The rank of the caller's bearer token, once a token route's check has passed. */
    role?: Role
  }
}

const RANK = { read: 1, submit: 2, admin: 3 } as const
export type Role = keyof typeof RANK
const ROLES = Object.keys(RANK) as Role[]
const VERB = { read: 'read', submit: 'submit builds', admin: 'change streams' } as const

const hash = (token: string) => createHash('sha256').update(token).digest('hex')

export function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (header === undefined) return undefined
  // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
  const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,512})$/i.exec(header)
  if (!match) throw errors.unauthorized()
  return match[1]
}

async function authorizeBuild (app: FastifyInstance, request: FastifyRequest) {
  const token = bearerToken(request)
  if (token === undefined) throw errors.unauthorized()
  const { id } = request.params as { id: string }
  const verdict = await app.core.results.authorize(id, token)
  if (verdict === 'other-build') throw errors.forbidden('report results for another build')
  if (verdict !== 'ok') throw errors.unauthorized()
}

/**
 * Whether the stream of a published-builds route (by its `stream`
 * parameter, or the build's stream for an `id`) is `publicRead`. Upstream
 * `cosa buildfetch --url` sends no credentials at all.
 */
async function publiclyReadable (app: FastifyInstance, request: FastifyRequest) {
  const { stream, id } = request.params as { stream?: string, id?: string }
  const name = stream ?? (id === undefined ? undefined : (await app.core.store.builds.getBuild(id))?.stream)
  return name !== undefined && (await app.core.store.streams.getStream(name))?.publicRead === true
}

type Done = (err?: Error) => void

export default fp(async function auth (app: FastifyInstance, opts: { config: Config }) {
  const ranks = new Map<string, number>()
  for (const role of ['read', 'submit', 'admin'] as const) {
    for (const token of opts.config.tokens[role]) ranks.set(hash(token), Math.max(ranks.get(hash(token)) ?? 0, RANK[role]))
  }
  const open = !hasTokens(opts.config)

  /** The check of a bearer-token route: synchronous unless a tokenless read asks whether its stream is public. */
  const tokenCheck = (access: 'read' | 'submit' | 'admin', publishedBuilds: boolean, queryToken: boolean) =>
    function checkToken (request: FastifyRequest, _reply: unknown, done: Done) {
      try {
        const token = bearerToken(request)
        if (token === undefined) {
          if (queryToken && app.core.eventTokens.valid((request.query as { token?: string } | undefined)?.token)) return done()
          if (!publishedBuilds) return done(errors.unauthorized())
          publiclyReadable(app, request).then((ok) => {
            request.publicRead = ok
            done(ok ? undefined : errors.unauthorized())
          }, done)
          return
        }
        const key = hash(token)
        const rank = ranks.get(key)
        if (rank === undefined) return done(errors.unauthorized())
        if (rank < RANK[access]) return done(errors.forbidden(VERB[access]))
        request.clientScope = key
        request.role = ROLES[rank - 1]
        done()
      } catch (err) {
        done(err as Error)
      }
    }

  app.decorateRequest('clientScope', 'anonymous')
  app.decorateRequest('publicRead', false)
  app.decorateRequest('role', undefined)
  // Each route gets the check its access needs, decided once here rather
  // than looked up on every request; public routes get none.
  app.addHook('onRoute', (route) => {
    const access = route.config?.access ?? 'public'
    if (access === 'public' || (open && access !== 'build')) return
    // Before the body is read: a build's own token, for that build alone.
    const check = access === 'build'
      ? async (request: FastifyRequest) => authorizeBuild(app, request)
      : tokenCheck(access, route.config?.publishedBuilds === true, route.config?.queryToken === true)
    route.onRequest = [check, ...[route.onRequest ?? []].flat()] as typeof route.onRequest
  })
}, { name: 'auth' })
