import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import {
  DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client
} from '@aws-sdk/client-s3'
import {
  IntegrityError, type ArtifactStore, type ByteRange, type Expected, type ObjectBody, type PutResult, type StoredObject
} from './artifact-store.js'
import { FileUpload } from './multipart-upload.js'
import { Sha256Thread } from './sha256-thread.js'

export interface S3StoreOptions {
  endpoint?: string
  region: string
  bucket: string
  /** '' or 'a/b', without a leading or trailing slash. */
  prefix: string
  forcePathStyle: boolean
  /** Absent: the SDK's default chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string, secretAccessKey: string }
  partSizeBytes?: number
  /** Parts of one upload in flight at most (2). */
  queueSize?: number
  requestTimeoutMs?: number
}

const MiB = 1024 * 1024
// As cosa buildupload: artifacts never change under their name, metadata does.
const ARTIFACT_CACHE = 'public, max-age=31536000, immutable'
const METADATA_CACHE = 'max-age=300'
const DELETE_BATCH = 1000

interface SdkError { name?: string, message?: string, $metadata?: { httpStatusCode?: number } }

function isNotFound (err: unknown): boolean {
  const e = err as SdkError
  // A missing bucket is a misconfiguration, not an absent object.
  if (e?.name === 'NoSuchBucket') return false
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404
}

// The SDK sends DeleteObjects with a CRC32 checksum only; S3's API still
// documents Content-MD5 as required, and older MinIO and other S3-compatible
// servers refuse the request without it (MissingContentMD5).
function withContentMd5 (command: DeleteObjectsCommand) {
  command.middlewareStack.add((next) => async (args) => {
    const request = args.request as { body?: unknown, headers?: Record<string, string> }
    if (request.headers && (typeof request.body === 'string' || request.body instanceof Uint8Array)) {
      request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64')
    }
    return next(args)
  }, { step: 'build', name: 'cosaContentMd5' })
  return command
}

// A body that carries its own CRC32 (putFile's) is signed as UNSIGNED-PAYLOAD:
// otherwise the signer hashes every part again with sha256, a second pass
// over the whole file (docs/benchmarks.md). The server still checks the CRC32.
function signChecksummedBodiesUnsigned (client: S3Client) {
  client.middlewareStack.add((next) => async (args) => {
    const headers = (args.request as { headers?: Record<string, string> }).headers
    if (headers?.['x-amz-checksum-crc32'] !== undefined) headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'
    return next(args)
  }, { step: 'build', name: 'cosaUnsignedPayload' })
}

const quoted = (etag: string | undefined) => etag === undefined || etag.startsWith('"') ? etag ?? '""' : `"${etag}"`

export class S3Store implements ArtifactStore {
  readonly kind = 's3' as const
  private readonly client: S3Client
  private readonly bucket: string
  private readonly prefix: string
  private readonly partSize: number
  private readonly queueSize: number
  private readonly hashing = new Sha256Thread()

  constructor (opts: S3StoreOptions) {
    if (opts.prefix.startsWith('/') || opts.prefix.endsWith('/')) {
      throw new Error(`S3 prefix "${opts.prefix}" must not start or end with "/"`)
    }
    this.partSize = opts.partSizeBytes ?? 8 * MiB
    if (this.partSize < 5 * MiB) throw new Error('S3 part size must be at least 5 MiB (the S3 minimum)')
    // Each part in flight holds a part-sized buffer, and one more is read:
    // 2 in flight of 8 MiB keep a 2 GiB upload under 150 MiB RSS with the
    // sha256 thread's ~10 MiB, 3 did not (docs/benchmarks.md).
    this.queueSize = opts.queueSize ?? 2
    this.bucket = opts.bucket
    this.prefix = opts.prefix
    const timeout = opts.requestTimeoutMs ?? 60_000
    this.client = new S3Client({
      region: opts.region,
      ...(opts.endpoint !== undefined && { endpoint: opts.endpoint }),
      forcePathStyle: opts.forcePathStyle,
      ...(opts.credentials && { credentials: opts.credentials }),
      // Default checksums send streamed bodies aws-chunked with a trailer,
      // which s3rver stores verbatim and some S3-compatible servers refuse.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // The SDK sends a body over 2 MiB with "Expect: 100-continue" on a new
      // connection it never reuses: a TCP (and TLS) handshake and a round
      // trip for every part. A rejected part costs one part's bytes instead.
      expectContinueHeader: false,
      maxAttempts: 3,
      // Options, not an instance: the SDK builds its own NodeHttpHandler, so we
      // need no direct dependency on @smithy/node-http-handler. Without
      // throwOnRequestTimeout the request timeout only logs a warning; the
      // socket timeout also catches a body stream that stalls after headers.
      requestHandler: {
        connectionTimeout: Math.min(timeout, 10_000),
        requestTimeout: timeout,
        throwOnRequestTimeout: true,
        socketTimeout: timeout
      }
    })
    signChecksummedBodiesUnsigned(this.client)
  }

  private key (key: string) { return this.prefix ? `${this.prefix}/${key}` : key }

  location (key: string) { return `s3://${this.bucket}/${this.key(key)}` }

  /** `what` is a key, or a description that starts with "s3://". */
  private fail (op: string, what: string, err: unknown): Error {
    const e = err as SdkError
    const status = e?.$metadata?.httpStatusCode
    const why = `${e?.name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${e?.message ?? String(err)}`
    const where = what.startsWith('s3://') ? what : this.location(what)
    return new Error(`S3 ${op} ${where} failed: ${why}`, { cause: err })
  }

  async putFile (key: string, path: string, expected: Expected, contentType: string): Promise<PutResult> {
    const upload = new FileUpload({
      client: this.client, bucket: this.bucket, key: this.key(key), contentType, cacheControl: ARTIFACT_CACHE,
      partSize: this.partSize, queueSize: this.queueSize
    }, this.hashing)
    try {
      return { ...await upload.run(path, key, expected), linked: false }
    } catch (err) {
      const abortError = await upload.abort()
      // The caller must see the integrity verdict; a failed abort is its cause.
      if (err instanceof IntegrityError) {
        if (abortError) err.cause = abortError
        throw err
      }
      const failed = this.fail('upload to', key, err)
      if (abortError) failed.message += `; aborting the multipart upload failed too, parts may be left: ${String(abortError)}`
      throw failed
    }
  }

  async putBytes (key: string, data: Buffer, contentType: string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({
        Bucket: this.bucket, Key: this.key(key), Body: data, ContentLength: data.length, ContentType: contentType, CacheControl: METADATA_CACHE
      }))
    } catch (err) { throw this.fail('put', key, err) }
  }

  async getBytes (key: string): Promise<Buffer | undefined> {
    const object = await this.get(key)
    if (!object) return undefined
    const chunks: Buffer[] = []
    for await (const chunk of object.body) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  }

  async head (key: string): Promise<StoredObject | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }))
      return { size: res.ContentLength ?? 0, etag: quoted(res.ETag), lastModified: res.LastModified ?? new Date(0) }
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw this.fail('head', key, err)
    }
  }

  async get (key: string, range?: ByteRange): Promise<ObjectBody | undefined> {
    let res
    try {
      res = await this.client.send(new GetObjectCommand({
        Bucket: this.bucket, Key: this.key(key), ...(range && { Range: `bytes=${range.start}-${range.end}` })
      }))
    } catch (err) {
      if (isNotFound(err)) return undefined
      throw this.fail('get', key, err)
    }
    const body = res.Body as Readable
    let size = res.ContentLength ?? 0
    if (range) {
      // A ranged answer's length is the range's: the whole size is in Content-Range.
      const m = /^bytes \d+-\d+\/(\d+)$/.exec(res.ContentRange ?? '')
      if (!m) { body.destroy(); throw new Error(`S3 get ${this.location(key)}: ranged read without a Content-Range`) }
      size = Number(m[1])
    }
    return { body, size, etag: quoted(res.ETag), lastModified: res.LastModified ?? new Date(0) }
  }

  async deletePrefix (prefix: string): Promise<void> {
    // An empty prefix would empty the whole store root.
    if (!prefix.endsWith('/') || prefix === '/') throw new Error(`refusing to delete under "${prefix}": not a directory prefix`)
    const full = this.key(prefix)
    // Collect, then delete: whether deleting under a listing that is being
    // paged through is safe depends on how a server builds its tokens.
    const keys: string[] = []
    let token: string | undefined
    try {
      do {
        const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ContinuationToken: token }))
        for (const o of res.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key)
        token = res.IsTruncated ? res.NextContinuationToken : undefined
      } while (token)
    } catch (err) { throw this.fail('list', prefix, err) }
    await this.deleteFull(keys)
  }

  private async deleteFull (fullKeys: string[]): Promise<void> {
    for (let i = 0; i < fullKeys.length; i += DELETE_BATCH) {
      const batch = fullKeys.slice(i, i + DELETE_BATCH)
      const what = `s3://${this.bucket}/${batch[0]}${batch.length > 1 ? ` and ${batch.length - 1} more` : ''}`
      const command = withContentMd5(new DeleteObjectsCommand({
        Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true }
      }))
      let res
      try {
        res = await this.client.send(command)
      } catch (err) { throw this.fail('delete', what, err) }
      // DeleteObjects answers 200 even when some keys could not be deleted.
      const first = res.Errors?.[0]
      if (first) {
        throw new Error(`S3 delete ${what}: ${res.Errors!.length} key(s) not deleted, first ${first.Key}: ${first.Code} ${first.Message}`)
      }
    }
  }

  async freeBytes (): Promise<number | undefined> { return undefined }

  /**
   * Ends the sha256 thread and the client's connections. Not needed for the
   * process to exit: an idle thread does not keep it alive.
   */
  async close (): Promise<void> {
    await this.hashing.close()
    this.client.destroy()
  }
}
