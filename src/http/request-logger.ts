import type { FastifyBaseLogger } from 'fastify'
import type { Bindings, ChildLoggerOptions } from 'pino'

// fastify gives every request a child of the server's logger that binds its
// id. pino's child() builds formatters and serializes the bindings, a few µs
// that every poll paid although a successful poll logs nothing (reads are
// logged at debug, src/http/request-log.ts). This child is made on first
// use; until then the parent answers questions about levels, which are the
// same. fastify's childLoggerFactory option.

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'

class RequestLogger {
  #child: FastifyBaseLogger | undefined
  constructor (readonly parent: FastifyBaseLogger, readonly bindings: Bindings) {}

  #real () { return (this.#child ??= this.parent.child(this.bindings)) }
  #log (level: Level, args: unknown[]) {
    const real = this.#real()
    Reflect.apply(real[level], real, args)
  }

  get level () { return this.#child?.level ?? this.parent.level }
  set level (level: string) { this.#real().level = level }
  isLevelEnabled (level: string) {
    const logger = (this.#child ?? this.parent) as { isLevelEnabled?: (l: string) => boolean }
    return logger.isLevelEnabled?.(level) ?? true
  }

  fatal (...args: unknown[]) { this.#log('fatal', args) }
  error (...args: unknown[]) { this.#log('error', args) }
  warn (...args: unknown[]) { this.#log('warn', args) }
  info (...args: unknown[]) { this.#log('info', args) }
  debug (...args: unknown[]) { this.#log('debug', args) }
  trace (...args: unknown[]) { this.#log('trace', args) }
  silent () {}
  child (bindings: Bindings, options?: ChildLoggerOptions) { return this.#real().child(bindings, options) }
}

/** fastify's childLoggerFactory; a route's own log options (level, serializers) get a real child at once. */
export function requestLogger (logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions): FastifyBaseLogger {
  return Object.keys(options).length > 0 ? logger.child(bindings, options) : new RequestLogger(logger, bindings) as unknown as FastifyBaseLogger
}
