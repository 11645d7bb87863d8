import type { Readable } from 'node:stream'

// Where published builds live, in cosa's bucket layout:
//   <stream>/builds/builds.json
//   <stream>/builds/<id>/<arch>/<file>
// Keys are relative to the store's root (a directory, or a bucket and
// prefix) and are always made by the service from checked names, never from
// a client's path.

export interface StoredObject {
  size: number
  /** A strong, quoted entity tag. */
  etag: string
  lastModified: Date
}

export interface ObjectBody extends StoredObject {
  /** The whole object, or the range asked for; `size` is always the whole object's. */
  body: Readable
}

/** Inclusive byte offsets, as in an HTTP Range header. */
export interface ByteRange {
  start: number
  end: number
}

/** What meta.json says of a file; a file it does not describe has nothing to check against. */
export interface Expected {
  sha256?: string | undefined
  size?: number | undefined
}

/** The file's bytes did not match what meta.json says: nothing was stored. */
export class IntegrityError extends Error {
  readonly code = 'INTEGRITY'
  constructor (message: string) {
    super(message)
    this.name = 'IntegrityError'
  }
}

export interface PutResult {
  size: number
  /** Of the bytes stored (hex). */
  sha256: string
  /**
   * The store took the file by hard link (same filesystem, one link): the
   * caller should drop its own name once the whole build is published, so
   * that no later build container can write into a published file.
   */
  linked: boolean
}

export interface PutOptions {
  /** false: always copy, for a file the workdir must keep using (the previous build's commit object). */
  link?: boolean
}

export interface ArtifactStore {
  readonly kind: 'local' | 's3'
  /** Where a key lives, for operators: a path or an s3:// URL. */
  location(key: string): string
  /**
   * Copies a file into `key`, hashing it on the way. A sha256 or size that
   * differs from `expected` rejects with IntegrityError, and no reader ever
   * sees a partial or unverified object. Resolves to the bytes stored.
   */
  putFile(key: string, path: string, expected: Expected, contentType: string, options?: PutOptions): Promise<PutResult>
  /** Writes a small object whole (builds.json); readers see the old or the new one. */
  putBytes(key: string, data: Buffer, contentType: string): Promise<void>
  getBytes(key: string): Promise<Buffer | undefined>
  head(key: string): Promise<StoredObject | undefined>
  /** undefined when the key does not exist. A range past the end is the caller's to refuse. */
  get(key: string, range?: ByteRange): Promise<ObjectBody | undefined>
  /** Removes every key under `prefix` (which ends with "/"). */
  deletePrefix(prefix: string): Promise<void>
  /** Free bytes where the store writes, or undefined when that has no meaning (S3). */
  freeBytes(): Promise<number | undefined>
  /** Lets go of what the store holds (threads, connections); called once, when the service stops. */
  close?(): Promise<void>
}
