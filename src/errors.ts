// Every error a client can see, with a stable code and its HTTP status.
// Messages name the fix where there is one; 5xx details never leave the server.

/** Every code a client can see; the OpenAPI document lists them as an enum. */
export const ERROR_CODES = [
  'BLD_INVALID_REQUEST', 'BLD_INVALID_IDEMPOTENCY_KEY', 'BLD_BAD_REQUEST', 'BLD_UNAUTHORIZED', 'BLD_FORBIDDEN',
  'BLD_STREAM_NOT_FOUND', 'BLD_BUILD_NOT_FOUND', 'BLD_META_NOT_FOUND', 'BLD_ARTIFACT_NOT_FOUND', 'BLD_ROUTE_NOT_FOUND',
  'BLD_METHOD_NOT_ALLOWED', 'BLD_BUILD_NOT_RUNNING', 'BLD_NOT_PUBLISHED', 'BLD_ARTIFACT_PRUNED',
  'BLD_PAYLOAD_TOO_LARGE', 'BLD_UNSUPPORTED_MEDIA_TYPE', 'BLD_RANGE_NOT_SATISFIABLE', 'BLD_IDEMPOTENCY_MISMATCH',
  'BLD_CONFIG_URL_REFUSED', 'BLD_STREAM_UNFIT', 'BLD_RESULT_REJECTED', 'BLD_RATE_LIMITED', 'BLD_STORAGE_LOW',
  'BLD_STORE_UNAVAILABLE', 'BLD_STREAM_BUSY', 'BLD_WEBHOOK_NOT_FOUND', 'BLD_DELIVERY_NOT_FOUND', 'BLD_WEBHOOK_URL_REFUSED',
  'BLD_UPLOAD_NOT_TAKEN', 'BLD_UPLOAD_REJECTED',
  'BLD_ENGINE_NOT_FOUND', 'BLD_ENGINE_CONFIGURED', 'BLD_ENGINE_BUSY', 'BLD_ENGINE_INVALID', 'BLD_DATABASE_UNAVAILABLE', 'BLD_INTERNAL'
] as const
export type ErrorCode = typeof ERROR_CODES[number]

export class ServiceError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly headers: Record<string, string>

  constructor (code: ErrorCode, statusCode: number, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.name = 'ServiceError'
    this.code = code
    this.statusCode = statusCode
    this.headers = headers
  }
}

/** How long a client is asked to wait before it asks again while the database does not answer. */
const DATABASE_RETRY_SECONDS = 5

/**
 * The database did not answer (PostgreSQL restarting, unreachable, out of
 * connections): the request may be sent again shortly (a change whose
 * commit the broken connection cut off may have been made: idempotency
 * keys make a submit safe to repeat). Build supervisors leave the build to
 * be adopted rather than failing it.
 */
export class DatabaseUnavailable extends ServiceError {
  constructor (cause: unknown) {
    super('BLD_DATABASE_UNAVAILABLE', 503, `the database is unavailable right now: retry in ${DATABASE_RETRY_SECONDS} s`,
      { 'retry-after': String(DATABASE_RETRY_SECONDS) })
    this.name = 'DatabaseUnavailable'
    this.cause = cause
  }
}

export const isDatabaseUnavailable = (err: unknown): err is DatabaseUnavailable => err instanceof DatabaseUnavailable

const define = <A extends unknown[]>(code: ErrorCode, statusCode: number, message: (...args: A) => string) =>
  (...args: A) => new ServiceError(code, statusCode, message(...args))

export const errors = {
  invalidRequest: define('BLD_INVALID_REQUEST', 400, (detail: string) => detail),
  invalidIdempotencyKey: define('BLD_INVALID_IDEMPOTENCY_KEY', 400, (why: string) =>
    `Idempotency-Key ${why}: send one key of 1-255 characters from [A-Za-z0-9._:-]`),
  unauthorized: () => new ServiceError('BLD_UNAUTHORIZED', 401,
    'missing or unknown bearer token: send Authorization: Bearer <token>', { 'www-authenticate': 'Bearer realm="cosa-buildd"' }),
  forbidden: define('BLD_FORBIDDEN', 403, (needed: string) => `this token may not ${needed}`),
  streamNotFound: define('BLD_STREAM_NOT_FOUND', 404, (stream: string) =>
    `stream ${JSON.stringify(stream)} does not exist: register it with PUT /v1/streams/{stream}`),
  webhookNotFound: define('BLD_WEBHOOK_NOT_FOUND', 404, (name: string) =>
    `webhook ${JSON.stringify(name)} does not exist: register it with PUT /v1/webhooks/{name}`),
  deliveryNotFound: define('BLD_DELIVERY_NOT_FOUND', 404, (webhook: string, id: string) =>
    `webhook ${JSON.stringify(webhook)} has no delivery ${JSON.stringify(id)}`),
  webhookUrlRefused: define('BLD_WEBHOOK_URL_REFUSED', 422, (why: string) => why),
  engineNotFound: define('BLD_ENGINE_NOT_FOUND', 404, (name: string) =>
    `engine ${JSON.stringify(name)} does not exist: add it with PUT /v1/engines/{name}`),
  engineConfigured: define('BLD_ENGINE_CONFIGURED', 409, (name: string) =>
    `engine ${name} comes from the configuration file (engines): change or remove it there and restart`),
  engineBusy: define('BLD_ENGINE_BUSY', 409, (name: string, running: number, what: string) =>
    `engine ${name} runs ${running} build(s): drain it (POST /v1/engines/${name}/drain), wait for them to end, then ${what}`),
  engineInvalid: define('BLD_ENGINE_INVALID', 422, (why: string) => why),
  buildNotFound: define('BLD_BUILD_NOT_FOUND', 404, (id: string) => `build ${JSON.stringify(id)} does not exist`),
  metaNotFound: define('BLD_META_NOT_FOUND', 404, (id: string) =>
    `build ${id} has no meta.json (it made no build, or has not finished)`),
  artifactNotFound: define('BLD_ARTIFACT_NOT_FOUND', 404, (what: string) => what),
  artifactPruned: define('BLD_ARTIFACT_PRUNED', 410, (what: string) =>
    `${what} is no longer in the artifact store: retention pruned it (pin builds to keep them)`),
  notPublished: define('BLD_NOT_PUBLISHED', 409, (id: string, state: string) =>
    `build ${id} is ${state}: only succeeded and unchanged builds have published artifacts`),
  rangeNotSatisfiable: (size: number) => new ServiceError('BLD_RANGE_NOT_SATISFIABLE', 416,
    `the range is outside the ${size} bytes of the file`, { 'content-range': `bytes */${size}` }),
  routeNotFound: define('BLD_ROUTE_NOT_FOUND', 404, (method: string, url: string) => `no route ${method} ${url}`),
  methodNotAllowed: (method: string, url: string, allowed: string[]) => new ServiceError('BLD_METHOD_NOT_ALLOWED', 405,
    `${url} does not take ${method}: it takes ${allowed.join(', ')}`, { allow: allowed.join(', ') }),
  idempotencyMismatch: define('BLD_IDEMPOTENCY_MISMATCH', 422, () =>
    'this Idempotency-Key was used with a different request; use a new key for a new request'),
  configUrlRefused: define('BLD_CONFIG_URL_REFUSED', 422, (why: string) => why),
  streamUnfit: define('BLD_STREAM_UNFIT', 422, (why: string) => `the Docker engine cannot run this stream's builds: ${why}`),
  resultRejected: define('BLD_RESULT_REJECTED', 422, (why: string) => why),
  streamBusy: define('BLD_STREAM_BUSY', 409, (stream: string) =>
    `stream ${stream} has a queued or running build: cancel it or wait for it to end, then delete the stream`),
  buildNotRunning: define('BLD_BUILD_NOT_RUNNING', 409, (id: string, state: string) =>
    `build ${id} is ${state}, not running: results are accepted only while it runs`),
  uploadNotTaken: define('BLD_UPLOAD_NOT_TAKEN', 409, (why: string) => why),
  uploadRejected: define('BLD_UPLOAD_REJECTED', 422, (why: string) => why),
  payloadTooLarge: define('BLD_PAYLOAD_TOO_LARGE', 413, (limit: number) => `request body exceeds ${limit} bytes`),
  unsupportedMediaType: define('BLD_UNSUPPORTED_MEDIA_TYPE', 415, (type: string, accepted = 'application/json') =>
    `content type ${JSON.stringify(type)} is not accepted: send ${accepted}`),
  /** A client error fastify itself raised, with its status and message. */
  clientError: (statusCode: number, message: string) => new ServiceError('BLD_BAD_REQUEST', statusCode, message),
  rateLimited: (max: number, retryAfterSeconds: number) => new ServiceError('BLD_RATE_LIMITED', 429,
    `more than ${max} submits a minute with this token: retry in ${retryAfterSeconds} s`, { 'retry-after': String(retryAfterSeconds) }),
  storageLow: (detail: string) => new ServiceError('BLD_STORAGE_LOW', 503,
    `not accepting builds: ${detail}`, { 'retry-after': '60' }),
  storeUnavailable: define('BLD_STORE_UNAVAILABLE', 503, (detail: string) =>
    `the artifact store cannot be read right now: ${detail}`),
  internal: define('BLD_INTERNAL', 500, () => 'internal error; the server log has the details')
}

export const isServiceError = (err: unknown): err is ServiceError => err instanceof ServiceError
