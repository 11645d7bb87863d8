import { open, type FileHandle } from 'node:fs/promises'
import { crc32 } from 'node:zlib'
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, PutObjectCommand,
  UploadPartCommand, type CompletedPart, type S3Client
} from '@aws-sdk/client-s3'
import type { Expected } from './artifact-store.js'
import { mismatch } from './integrity.js'
import type { Sha256Stream, Sha256Thread } from './sha256-thread.js'

// One file to one S3 object at the speed of hashing it (docs/benchmarks.md):
// every byte is read once into a reused part buffer and goes once through
// sha256 (the whole file's, checked against meta.json, on a thread of its
// own) and once through CRC32 (the part's, on the main thread, which the
// server checks, so that the signature need not hash the body again). A
// per-part sha256 as the part's checksum would be a second sha256 pass: the
// whole file's digest cannot be made from the parts'.

const MiB = 1024 * 1024
/** S3's limit on the parts of one upload. */
const MAX_PARTS = 10_000
/**
 * Each read fills this much of a part buffer while the piece before it is
 * hashed: 4 MiB reads took 8-10% less CPU than 1 MiB ones (the syscalls and
 * page-cache copies), two reads to a part of 8 MiB.
 */
const READ_BYTES = 4 * MiB

export interface UploadTarget {
  client: S3Client
  bucket: string
  /** The whole key, prefix included. */
  key: string
  contentType: string
  cacheControl: string
  /** The smallest part; a file too large for 10,000 of them gets larger ones. */
  partSize: number
  /** Parts in flight at most. */
  queueSize: number
}

interface Part {
  buf: Buffer
  length: number
  crc: number
  /** Resolves once the sha256 thread no longer reads the buffer. */
  hashed: Promise<void>
}

const crcHeader = (crc: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(crc)
  return b.toString('base64')
}

/**
 * The part buffers of one upload: allocated up to `max`, then each reused once
 * its request has settled and it is hashed. Shared memory, which the sha256
 * thread reads in place.
 */
class PartBuffers {
  readonly #free: Buffer[] = []
  readonly #waiting: Array<(b: Buffer) => void> = []
  #made = 0
  constructor (private readonly size: number, private readonly max: number) {}

  async take (): Promise<Buffer> {
    const free = this.#free.pop()
    if (free) return free
    if (this.#made < this.max) {
      this.#made++
      return Buffer.from(new SharedArrayBuffer(this.size))
    }
    return await new Promise((resolve) => this.#waiting.push(resolve))
  }

  give (b: Buffer) {
    const waiter = this.#waiting.shift()
    if (waiter) waiter(b)
    else this.#free.push(b)
  }
}

/**
 * The file's parts in order, each given to `sha256` as it is read. The read of
 * the next piece runs on libuv's threads while this one is CRC32'd here and
 * sha256'd in the sha256 thread.
 */
async function * fileParts (fh: FileHandle, buffers: PartBuffers, sha256: Sha256Stream): AsyncGenerator<Part> {
  const read = (buf: Buffer, offset: number, position: number) =>
    fh.read(buf, offset, Math.min(READ_BYTES, buf.length - offset), position).then((r) => r.bytesRead)
  let position = 0
  for (;;) {
    const buf = await buffers.take()
    let filled = 0
    let crc = 0
    let hashed = Promise.resolve()
    let reading = read(buf, 0, position)
    for (;;) {
      const n = await reading
      if (n === 0) break
      const piece = buf.subarray(filled, filled + n)
      filled += n
      position += n
      if (filled < buf.length) reading = read(buf, filled, position)
      // The thread hashes in order: the last piece's answer frees the whole buffer.
      hashed = sha256.update(piece)
      crc = crc32(piece, crc)
      if (filled === buf.length) break
    }
    if (filled === 0) {
      buffers.give(buf)
      return
    }
    yield { buf, length: filled, crc, hashed }
    if (filled < buf.length) return
  }
}

/**
 * Uploads one file: a single PutObject when it fits in one part, else a
 * multipart upload. The last part is held back until the whole file is
 * verified, so a file that is not what meta.json says never completes.
 * After a failure, abort() ends the multipart upload.
 */
export class FileUpload {
  #uploadId: Promise<string> | undefined
  readonly #parts: CompletedPart[] = []
  readonly #inFlight = new Set<Promise<void>>()
  #failure: { err: unknown } | undefined
  #buffers: PartBuffers | undefined
  #sha256: Sha256Stream | undefined

  constructor (private readonly target: UploadTarget, private readonly hashing: Sha256Thread) {}

  async run (path: string, what: string, expected: Expected): Promise<{ size: number, sha256: string }> {
    const fh = await open(path, 'r')
    try {
      const { size: statSize } = await fh.stat()
      const partSize = Math.max(this.target.partSize, Math.ceil(statSize / MAX_PARTS / MiB) * MiB)
      // The parts in flight and the one being read.
      this.#buffers = new PartBuffers(partSize, this.target.queueSize + 1)
      const sha256 = this.#sha256 = this.hashing.open()
      // The part that reaches the size the file had at open is held back
      // until the end: the last one, unless the file grew.
      let held: Part | undefined
      let number = 0
      let size = 0
      for await (const part of fileParts(fh, this.#buffers, sha256)) {
        this.#throwIfFailed()
        if (held) this.#send(++number, held)
        held = undefined
        size += part.length
        if (size < statSize) this.#send(++number, part)
        else held = part
      }
      const digest = await sha256.digest()
      this.#sha256 = undefined
      const wrong = mismatch(what, expected, size, digest)
      if (wrong) throw wrong
      if (number === 0) await this.#putWhole(held)
      else await this.#complete(number, held)
      return { size, sha256: digest }
    } finally {
      await fh.close()
    }
  }

  /** Ends a multipart upload after run() failed: the abort's own failure, if any (parts may be left). */
  async abort (): Promise<unknown> {
    this.#sha256?.discard()
    // A part still in flight could land after the abort and be kept.
    await Promise.allSettled(this.#inFlight)
    if (!this.#uploadId) return undefined
    let UploadId
    try {
      UploadId = await this.#uploadId
    } catch {
      return undefined
    }
    try {
      await this.target.client.send(new AbortMultipartUploadCommand({ Bucket: this.target.bucket, Key: this.target.key, UploadId }))
      return undefined
    } catch (err) {
      return err
    }
  }

  #throwIfFailed () {
    if (this.#failure) throw this.#failure.err
    if (this.#sha256?.error) throw this.#sha256.error
  }

  #created () {
    const { client, bucket, key, contentType, cacheControl } = this.target
    this.#uploadId ??= client.send(new CreateMultipartUploadCommand({
      Bucket: bucket, Key: key, ContentType: contentType, CacheControl: cacheControl, ChecksumAlgorithm: 'CRC32'
    })).then((res) => {
      if (!res.UploadId) throw new Error('CreateMultipartUpload answered without an UploadId')
      return res.UploadId
    })
    return this.#uploadId
  }

  /** Starts a part's request; its buffer is given back when it settles, which is what bounds the parts in flight. */
  #send (PartNumber: number, part: Part) {
    const { client, bucket, key } = this.target
    const ChecksumCRC32 = crcHeader(part.crc)
    const request: Promise<void> = (async () => {
      const UploadId = await this.#created()
      const res = await client.send(new UploadPartCommand({
        Bucket: bucket, Key: key, UploadId, PartNumber, Body: part.buf.subarray(0, part.length), ContentLength: part.length, ChecksumCRC32
      }))
      this.#parts[PartNumber - 1] = { PartNumber, ETag: res.ETag, ChecksumCRC32 }
    })().catch((err: unknown) => {
      this.#failure ??= { err }
    }).finally(() => {
      this.#inFlight.delete(request)
      void part.hashed.then(() => this.#buffers!.give(part.buf))
    })
    this.#inFlight.add(request)
  }

  /** A file that shrank since it was opened has sent its last part already. */
  async #complete (sent: number, last: Part | undefined) {
    if (last) this.#send(sent + 1, last)
    while (this.#inFlight.size) await Promise.all(this.#inFlight)
    this.#throwIfFailed()
    const { client, bucket, key } = this.target
    await client.send(new CompleteMultipartUploadCommand({
      Bucket: bucket, Key: key, UploadId: await this.#created(), MultipartUpload: { Parts: this.#parts }
    }))
  }

  async #putWhole (part: Part | undefined) {
    const { client, bucket, key, contentType, cacheControl } = this.target
    const body = part ? part.buf.subarray(0, part.length) : Buffer.alloc(0)
    await client.send(new PutObjectCommand({
      Bucket: bucket, Key: key, Body: body, ContentLength: body.length, ContentType: contentType, CacheControl: cacheControl,
      ChecksumCRC32: crcHeader(part?.crc ?? 0)
    }))
  }
}
