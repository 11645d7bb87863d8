import type { LogFn } from 'pino'

/** What services need of a logger: pino's, or fastify's wrapper of it. */
export interface Logger {
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
}
