import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'

// Each build's container gets a token of its own for POST /v1/builds/{id}/result.
// Only its hash is stored; comparison is constant-time.

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex')

export function mintToken () {
  const token = randomBytes(32).toString('base64url')
  return { token, hash: hashToken(token) }
}

export function tokenMatches (token: string, expectedHash: string) {
  const expected = Buffer.from(expectedHash, 'hex')
  return expected.length === 32 && timingSafeEqual(Buffer.from(hashToken(token), 'hex'), expected)
}
