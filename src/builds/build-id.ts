import { randomBytes } from 'node:crypto'

// ULIDs (48-bit time, 80 random bits, Crockford base32), lowercased: sortable,
// unguessable, and valid in container names and file names.

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'

export function newBuildId (now: number = Date.now()): string {
  let time = ''
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = ALPHABET[t % 32] + time
  const bytes = randomBytes(10)
  let random = ''
  let acc = 0
  let bits = 0
  for (const byte of bytes) {
    acc = (acc << 8) | byte
    bits += 8
    while (bits >= 5) {
      random += ALPHABET[(acc >> (bits - 5)) & 31]
      bits -= 5
    }
  }
  return time + random
}

export const BUILD_ID_PATTERN = /^[0-9a-hjkmnp-tv-z]{26}$/
