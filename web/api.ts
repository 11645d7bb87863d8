
// The JSON API as the dashboard uses it: the caller's token (pasted on the
// token page, kept in sessionStorage) on every request, and conditional GETs
// so that polling an unchanged resource costs a 304.

export type { Build, BuildList, Stream } from './types.js'

const TOKEN_KEY = 'cosa-buildd.token'

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? undefined,
  set: (value: string) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY)
}

export class ApiError extends Error {
  constructor (readonly status: number, readonly code: string, message: string) { super(message) }
}

export function authHeaders (): Record<string, string> {
  const value = token.get()
  return value === undefined ? {} : { authorization: `Bearer ${value}` }
}

async function failure (res: Response): Promise<ApiError> {
  const body = await res.json().catch(() => ({})) as { code?: string, message?: string }
  return new ApiError(res.status, body.code ?? 'HTTP_' + res.status, body.message ?? res.statusText)
}

export async function request (path: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(path, { ...init, headers: { ...authHeaders(), ...init.headers as Record<string, string> } })
  if (!res.ok && res.status !== 304) throw await failure(res)
  return res
}

export async function getJson<T> (path: string): Promise<T> {
  return await (await request(path)).json() as T
}

export async function postJson<T> (path: string, method = 'POST'): Promise<T> {
  return await (await request(path, { method })).json() as T
}

const etags = new Map<string, { etag: string, body: unknown }>()

/** A GET that sends the last ETag and reuses the last body on 304; `changed` says which. */
export async function poll<T> (path: string): Promise<{ body: T, changed: boolean }> {
  const last = etags.get(path)
  const res = await request(path, last ? { headers: { 'if-none-match': last.etag } } : {})
  if (res.status === 304 && last) return { body: last.body as T, changed: false }
  const body = await res.json() as T
  const etag = res.headers.get('etag')
  if (etag !== null) etags.set(path, { etag, body })
  return { body, changed: true }
}

export type Access = 'token-needed' | 'read' | 'submit'

/** What the caller may do, from GET /v1/whoami: submit and admin tokens (and anyone on a server without tokens) see Cancel and Pin. */
export async function access (): Promise<Access> {
  const res = await fetch('/v1/whoami', { headers: authHeaders() })
  if (res.status === 401) return 'token-needed'
  if (!res.ok) throw await failure(res)
  const { role } = await res.json() as { role: 'read' | 'submit' | 'admin' | 'open' }
  return role === 'read' ? 'read' : 'submit'
}

/**
 * Opens (or, with `filename`, saves) a file of the API. Links carry no
 * Authorization header, so with a token the file is fetched and handed to
 * the browser as a blob; without one the plain link does it.
 */
export async function openWithToken (path: string, filename?: string) {
  const res = await request(path)
  const url = URL.createObjectURL(await res.blob())
  const a = document.createElement('a')
  a.href = url
  if (filename !== undefined) a.download = filename
  else a.target = '_blank'
  a.rel = 'noopener'
  a.click()
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}
