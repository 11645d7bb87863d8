import createClient from 'openapi-fetch'
import type { components, paths } from './api-types.js'
import { CliError, EXIT } from './exit.js'

export type Build = components['schemas']['Build']
export type Stream = components['schemas']['Stream']

export const DEFAULT_URL = 'http://127.0.0.1:8080'

export interface Api {
  client: ReturnType<typeof createClient<paths>>
  baseUrl: string
  /** An absolute URL on the server, for people and for links to follow. */
  link: (path: string) => string
}

export function connect (opts: { url?: string | undefined, token?: string | undefined }, env = process.env): Api {
  const baseUrl = (opts.url ?? env.COSA_BUILDD_URL ?? DEFAULT_URL).replace(/\/+$/, '')
  if (!/^https?:\/\/[^/]/.test(baseUrl)) {
    throw new CliError(`the server URL ${JSON.stringify(baseUrl)} is not an http(s) URL: pass --url http://HOST:PORT or set COSA_BUILDD_URL`, EXIT.usage)
  }
  const token = opts.token ?? env.COSA_BUILDD_TOKEN
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {}
  return { client: createClient<paths>({ baseUrl, headers }), baseUrl, link: (path) => baseUrl + path }
}

export function unreachable (api: Pick<Api, 'baseUrl'>, err: unknown) {
  const cause = (err as { cause?: { code?: string, message?: string } }).cause
  const why = cause?.code ?? cause?.message ?? (err as Error).message
  return new CliError(`cannot reach the server at ${api.baseUrl} (${why}): start it with \`cosa-buildd serve\`, ` +
    'or point --url or COSA_BUILDD_URL at it', EXIT.api)
}

/** The server's messages name the API's fix; these name the command's. */
const HINTS: Record<string, string> = {
  BLD_UNAUTHORIZED: 'pass --token or set COSA_BUILDD_TOKEN',
  BLD_FORBIDDEN: 'use a token with that right (--token or COSA_BUILDD_TOKEN)',
  BLD_STREAM_NOT_FOUND: 'with this command: cosa-buildd stream put NAME --url URL --ref REF'
}

export function refused (what: string, response: Response, error: unknown) {
  const body = error as { code?: string, message?: string } | undefined
  const detail = body?.message ? `${body.message} (${body.code}, HTTP ${response.status})` : `HTTP ${response.status}`
  const hint = HINTS[body?.code ?? '']
  return new CliError(`${what}: ${detail}${hint ? `; ${hint}` : ''}`, EXIT.api)
}

interface Answer<T> { data?: T, error?: unknown, response: Response }

/** An API call's data; an unreachable server or a refusal becomes the error to print, with exit status 4. */
export async function call<T> (api: Api, what: string, request: () => Promise<Answer<T>>) {
  let answer: Answer<T>
  try {
    answer = await request()
  } catch (err) {
    throw unreachable(api, err)
  }
  if (!answer.response.ok) throw refused(what, answer.response, answer.error)
  return { data: answer.data as T, response: answer.response }
}

export const isUnreachable = (err: unknown) => err instanceof CliError && /^cannot reach/.test(err.message)
