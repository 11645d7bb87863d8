import type { LogFn } from 'pino'

/** What services need of a logger: pino's, or fastify's wrapper of it. */
export interface Logger {
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
}

/** A logger whose lines all carry `bindings` (a build's id and stream, say). */
export const childLogger = (logger: Logger, bindings: Record<string, unknown>): Logger =>
  'child' in logger && typeof logger.child === 'function' ? logger.child(bindings) as Logger : logger
