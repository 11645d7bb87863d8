import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'

// Short-lived, read-only tokens for GET /v1/events alone, for browsers'
// EventSource, which cannot send an Authorization header: a long-lived token
// must never be put in a URL (URLs end up in proxy logs and browser history).
// A token is its expiry and an HMAC of it under a key kept in the data
// directory, so it stays valid across a restart (a reconnecting stream) and
// needs no table. Only GET /v1/events accepts it (auth.ts, route config `queryToken`).

const PREFIX = 'evt1'

export class EventTokens {
  readonly #key: Buffer
  readonly #ttlMs: number
  readonly #now: () => Date

  constructor (opts: { keyFile: string, ttlSeconds: number, now: () => Date }) {
    this.#key = loadKey(opts.keyFile)
    this.#ttlMs = opts.ttlSeconds * 1000
    this.#now = opts.now
  }

  mint () {
    const expires = Math.floor((this.#now().getTime() + this.#ttlMs) / 1000)
    return { token: `${PREFIX}.${expires}.${this.#sign(expires)}`, expiresAt: new Date(expires * 1000).toISOString() }
  }

  /** Whether `token` is one this service minted and it has not expired. */
  valid (token: string | undefined) {
    const parts = token?.split('.')
    if (parts?.length !== 3 || parts[0] !== PREFIX || !/^\d{1,12}$/.test(parts[1]!)) return false
    const expires = Number(parts[1])
    const given = Buffer.from(parts[2]!, 'base64url')
    const expected = Buffer.from(this.#sign(expires), 'base64url')
    return given.length === expected.length && timingSafeEqual(given, expected) && expires * 1000 > this.#now().getTime()
  }

  #sign (expires: number) {
    return createHmac('sha256', this.#key).update(`${PREFIX}.${expires}`).digest('base64url')
  }
}

function loadKey (path: string) {
  try {
    return readFileSync(path)
  } catch {
    const key = randomBytes(32)
    writeFileSync(path, key, { flag: 'wx', mode: 0o600 })
    return key
  }
}
