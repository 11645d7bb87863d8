import { z } from 'zod'
import { ERROR_CODES } from '../../errors.js'

/** RFC 3339 times, as the service writes them (Date.toISOString). */
export const Timestamp = z.string().meta({ format: 'date-time', example: '2026-11-30T17:00:00.000Z' })

export const ErrorBody = z.object({
  code: z.enum(ERROR_CODES).meta({ example: 'BLD_STREAM_NOT_FOUND' }),
  message: z.string()
}).meta({
  id: 'Error',
  description: 'Every 4xx and 5xx answer has this shape; `code` is stable. Any request that reads or writes the service\'s state ' +
    'may answer 503 `BLD_DATABASE_UNAVAILABLE` with Retry-After while its PostgreSQL does not answer (restarting, unreachable).'
})

/** 304 to an If-None-Match that names the current ETag (routes with `config.etag`). */
export const NotModified = z.null().meta({ description: 'Not modified: the ETag sent in If-None-Match is still current; no body.' })

export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, ErrorBody])) as Record<number, typeof ErrorBody>

export const StreamName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/,
  'stream names are 1-63 characters of a-z, 0-9, ".", "_" and "-", starting with a letter or digit')

// Text that ends up in logs, command lines and terminals: no control
// characters and no bidirectional overrides, which can make a log or a
// listing read differently from what runs (Trojan Source).
// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/
export const SafeText = z.string().refine((s) => !UNSAFE_TEXT.test(s), 'must not contain control or bidirectional-override characters')
