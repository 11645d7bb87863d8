import closeWithGrace from 'close-with-grace'
import Fastify, { LogController, type FastifyError, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { realpathSync } from 'node:fs'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { pino } from 'pino'
import app from './app.js'
import { requestLogger } from './http/request-logger.js'
import { requestId, tagReply } from './http/request-log.js'
import { hasTokens, isLoopback, loadConfig, unknownEnv, type Config } from './config.js'

// The process: configuration, logger, listen, and a graceful shutdown that
// finishes in-flight requests, answers new ones 503, and leaves running
// builds for the next start to adopt.

export const MAX_PARAM_LENGTH = 3 * 255

/**
 * A shutdown that has not finished by then exits 1 anyway: a stuck request or
 * engine call must not hold a stop forever. Below the 40 s systemd and
 * Kubernetes are given (deploy/), so the service, not SIGKILL, ends it.
 */
export const SHUTDOWN_DEADLINE_MS = 30_000

/**
 * Fastify's options for this service, for the process and for tests alike:
 * limits, timeouts (checked every second, not Node's default 30 s, so a
 * slow client is closed near requestTimeout), and every answer fastify or
 * Node's parser gives by itself shaped like the API's own errors.
 */
export function serverOptions (config: Config) {
  return {
    bodyLimit: config.http.bodyLimit,
    // Past find-my-way's 100: a file of a build (up to 255 characters, the
    // schemas' limit) may be percent-encoded; the schemas then say what is too long.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    requestTimeout: config.http.requestTimeoutMs,
    http: { connectionsCheckingInterval: Math.max(250, Math.min(1000, Math.floor(config.http.requestTimeoutMs / 2))) },
    return503OnClosing: true,
    forceCloseConnections: 'idle' as const,
    onProtoPoisoning: 'error' as const,
    onConstructorPoisoning: 'error' as const,
    frameworkErrors: frameworkErrors as FastifyServerOptions['frameworkErrors'],
    clientErrorHandler,
    genReqId: requestId,
    childLoggerFactory: requestLogger,
    // request-log.ts writes one line per answer instead of fastify's two.
    logController: new LogController({ disableRequestLogging: true })
  }
}

function frameworkErrors (err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400
  const message = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
    ? 'a path segment is too long'
    : err.code === 'FST_ERR_BAD_URL' ? 'the URL is malformed (bad percent-encoding)' : 'the request is malformed'
  tagReply(request, reply)
  return reply.code(status).send({ code: 'BLD_BAD_REQUEST', message })
}

const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'the request headers are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'the request took too long to arrive'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'the request body is too large']
}

/** Node's parser refused the bytes before fastify saw a request. */
function clientErrorHandler (err: NodeJS.ErrnoException, socket: Duplex) {
  if (!socket.writable || (socket as { _httpMessage?: unknown })._httpMessage) return socket.destroy()
  const [status, message] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'the request is malformed HTTP']
  const body = JSON.stringify({ code: 'BLD_BAD_REQUEST', message })
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}

export function buildServer (config: Config) {
  const logger = pino({
    level: config.logLevel,
    redact: { paths: ['*.token', '*.resultToken'], censor: '[redacted]' }
  })
  const server = Fastify({ loggerInstance: logger, ...serverOptions(config) })
  server.register(app, { config })
  return server
}

export async function main () {
  const config = loadConfig()
  if (!hasTokens(config) && !isLoopback(config.host)) {
    throw new Error(`refusing to listen on ${config.host} without tokens: configure read, submit and admin ` +
      'tokens (COSA_BUILDD_*_TOKENS or a config file), or listen on 127.0.0.1')
  }
  const server = buildServer(config)
  if (!hasTokens(config)) {
    server.log.warn('no tokens configured: listening on loopback only, and every caller has every right')
  }
  for (const { name, nearest } of unknownEnv(process.env)) {
    server.log.warn({ variable: name, nearest }, `unknown environment variable ${name} is ignored (did you mean ${nearest}?)`)
  }
  // Signals and uncaught errors alike: finish in-flight requests (new ones get
  // 503), leave running builds to the next start; exit 1 past the deadline.
  closeWithGrace({ delay: SHUTDOWN_DEADLINE_MS, logger: server.log }, async ({ signal, err }) => {
    if (err) server.log.fatal({ err }, 'uncaught error: shutting down')
    else server.log.info({ signal }, 'shutting down; running builds keep running and are adopted at the next start')
    await server.close()
  })
  await server.listen({ host: config.host, port: config.port })
}

/** Run as a program, also through a symlink (npm's bin links, /usr/local/bin): both sides resolved. */
export function isMainModule (moduleUrl: string, argv1 = process.argv[1]) {
  if (argv1 === undefined) return false
  try {
    return realpathSync(fileURLToPath(moduleUrl)) === realpathSync(argv1)
  } catch {
    return false
  }
}

if (isMainModule(import.meta.url)) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
