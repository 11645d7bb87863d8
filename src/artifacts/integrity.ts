import { createHash } from 'node:crypto'
import { Transform } from 'node:stream'
import { IntegrityError, type Expected } from './artifact-store.js'

// One pass over an image's bytes both stores it and proves it is the file
// meta.json describes.

/** Images are gigabytes: 1 MiB reads cost a third less CPU than the 64 KiB default (bench/publish.ts). */
export const READ = { highWaterMark: 1024 * 1024 }

/**
 * Hashes the bytes passing through. At the end it fails the stream with an
 * IntegrityError if they are not the expected ones (where anything is expected): before the writer sees
 * the end, so a staged file is never renamed in and an upload never completes.
 */
export function verifier (what: string, expected: Expected) {
  const hash = createHash('sha256')
  let size = 0
  let sha256 = ''
  let error: IntegrityError | undefined
  const stream = new Transform({
    transform (chunk: Buffer, _enc, callback) {
      hash.update(chunk)
      size += chunk.length
      callback(null, chunk)
    },
    flush (callback) {
      sha256 = hash.digest('hex')
      error = mismatch(what, expected, size, sha256)
      callback(error ?? null)
    }
  })
  return { stream, size: () => size, sha256: () => sha256, error: () => error }
}

/** The verdict on bytes already hashed: undefined when they are what meta.json says (or it says nothing). */
export function mismatch (what: string, expected: Expected, size: number, sha256: string): IntegrityError | undefined {
  if (expected.size !== undefined && expected.size !== size) {
    return new IntegrityError(`${what}: ${size} bytes, meta.json says ${expected.size}`)
  }
  if (expected.sha256 !== undefined && sha256 !== expected.sha256.toLowerCase()) {
    return new IntegrityError(`${what}: sha256 ${sha256}, meta.json says ${expected.sha256}`)
  }
  return undefined
}
