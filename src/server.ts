import Fastify from 'fastify'
import { pino } from 'pino'
import app from './app.js'
import { hasTokens, isLoopback, loadConfig, type Config } from './config.js'

// The process: configuration, logger, listen, and a graceful shutdown that
// finishes in-flight requests, answers new ones 503, and leaves running
// builds for the next start to adopt.

export function buildServer (config: Config) {
  const logger = pino({
    level: config.logLevel,
    redact: { paths: ['req.headers.authorization', '*.token', '*.resultToken'], censor: '[redacted]' }
  })
  const server = Fastify({
    loggerInstance: logger,
    bodyLimit: config.http.bodyLimit,
    requestTimeout: config.http.requestTimeoutMs,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error'
  })
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
  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    server.log.info({ signal }, 'shutting down; running builds keep running and are adopted at the next start')
    server.close().then(() => process.exit(0), (err) => {
      server.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
  await server.listen({ host: config.host, port: config.port })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err) => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
