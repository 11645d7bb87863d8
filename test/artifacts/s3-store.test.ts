import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import { crc32 } from 'node:zlib'
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import t, { type Test } from 'tap'
import { IntegrityError } from '../../src/artifacts/artifact-store.js'
import { S3Store } from '../../src/artifacts/s3-store.js'
import { startFaultProxy } from '../fault-proxy.js'
import { S3RVER_CREDENTIALS, startS3, startS3Process } from '../s3-server.js'

const MiB = 1024 * 1024
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

const s3 = await startS3(t)
const dir = await mkdtemp(join(tmpdir(), 'cosa-buildd-s3-test-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

const store = (prefix = '', endpoint = s3.endpoint, requestTimeoutMs?: number) => new S3Store({
  endpoint, region: 'us-east-1', bucket: s3.bucket, prefix, forcePathStyle: true,
  credentials: S3RVER_CREDENTIALS, partSizeBytes: 5 * MiB, requestTimeoutMs
})
const raw = new S3Client({
  endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3RVER_CREDENTIALS,
  requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED'
})
t.teardown(() => raw.destroy())
const list = async (prefix: string) =>
  ((await raw.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key).sort()

// Not a multiple of the part size, so the last part is short: 5 + 5 + ~2 MiB.
const big = randomBytes(12 * MiB + 12345)
const bigPath = join(dir, 'big.qcow2')
await writeFile(bigPath, big)
const small = Buffer.from('a small artifact\n')
const smallPath = join(dir, 'small.txt')
await writeFile(smallPath, small)

async function noUpload (t: Test, key: string) {
  try {
    const res = await raw.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: key }))
    t.same(res.Uploads ?? [], [], 'no multipart upload is left open')
  } catch (err) {
    t.equal((err as Error).name, 'NotImplemented', 'only s3rver\'s lack of ListMultipartUploads excuses this')
  }
}

t.test('multipart putFile stores the exact bytes; head and ranged get agree', async (t) => {
  const s = store('mp')
  const started = process.hrtime.bigint()
  const put = await s.putFile('s/builds/1/x86_64/big.qcow2', bigPath, { sha256: sha256(big), size: big.length }, 'application/x-qemu-disk')
  const ms = Number(process.hrtime.bigint() - started) / 1e6
  t.comment(`uploaded ${(big.length / MiB).toFixed(2)} MiB in ${ms.toFixed(0)} ms`)
  t.same(put, { size: big.length, sha256: sha256(big), linked: false })

  const back = await s.getBytes('s/builds/1/x86_64/big.qcow2')
  t.equal(back?.length, big.length)
  t.equal(sha256(back!), sha256(big), 'the stored bytes hash as the file does')

  const head = await s.head('s/builds/1/x86_64/big.qcow2')
  t.equal(head?.size, big.length)
  t.match(head?.etag, /^"[^"]+"$/, 'a quoted etag')
  t.ok(head!.lastModified instanceof Date && !Number.isNaN(head!.lastModified.getTime()))

  // Across the boundary of parts 1 and 2.
  const range = { start: 5 * MiB - 7, end: 5 * MiB + 8 }
  const got = await s.get('s/builds/1/x86_64/big.qcow2', range)
  t.ok(got)
  const chunks: Buffer[] = []
  for await (const c of got!.body) chunks.push(c as Buffer)
  t.same(Buffer.concat(chunks), big.subarray(range.start, range.end + 1), 'exactly the asked bytes')
  t.equal(got!.size, big.length, 'size is the whole object')
  t.equal(got!.etag, head!.etag)

  const whole = await s.get('s/builds/1/x86_64/big.qcow2')
  const h = createHash('sha256')
  for await (const c of whole!.body) h.update(c as Buffer)
  t.equal(h.digest('hex'), sha256(big))
  t.equal(whole!.size, big.length)
  t.equal(s.location('k'), `s3://${s3.bucket}/mp/k`)
})

t.test('a wrong sha256 rejects and leaves no object, multipart or single', async (t) => {
  const s = store('bad')
  // s3rver cannot list or abort multipart uploads: check that the store asks.
  const sent: string[] = []
  ;(s as unknown as { client: S3Client }).client.middlewareStack.add((next, context) => async (args) => {
    sent.push(context.commandName ?? '?')
    return next(args)
  }, { step: 'initialize', name: 'testRecord' })
  for (const [name, path] of [['big', bigPath], ['small', smallPath]] as const) {
    const err = await s.putFile(`x/${name}`, path, { sha256: '0'.repeat(64) }, 'application/octet-stream').catch((e: unknown) => e)
    t.ok(err instanceof IntegrityError, `${name}: IntegrityError`)
    t.equal((err as IntegrityError).code, 'INTEGRITY')
    t.match((err as Error).message, sha256(name === 'big' ? big : small))
    t.same(await list(`bad/x/${name}`), [], `${name}: nothing listed`)
    t.equal(await s.head(`x/${name}`), undefined)
    await noUpload(t, `bad/x/${name}`)
    if (name === 'big') {
      const count = (c: string) => sent.filter((x) => x === c).length
      t.equal(count('CreateMultipartUploadCommand'), 1)
      t.equal(count('UploadPartCommand'), 2, 'the two full parts, never the last one')
      t.equal(count('CompleteMultipartUploadCommand'), 0)
      t.equal(count('AbortMultipartUploadCommand'), 1, 'the upload is aborted')
    } else {
      t.same(sent, ['HeadObjectCommand'], 'not even a PutObject for a single-part file')
    }
    sent.length = 0
  }
})

interface Sent {
  command: string
  input: Record<string, unknown>
  headers: Record<string, string>
  /** Of the body as sent: part buffers are reused, so it is not kept. */
  bodyLength?: number
  bodyCrc32?: string
  /** When the request was sent and when it settled, in one sequence for all requests. */
  sentAt: number
  settledAt?: number
}

/** Every request attempt the store's client makes, as it goes on the wire (signed). */
function record (s: S3Store) {
  const sent: Sent[] = []
  let seq = 0
  ;(s as unknown as { client: S3Client }).client.middlewareStack.add((next, context) => async (args) => {
    const request = args.request as { headers: Record<string, string>, body?: unknown }
    const body = request.body instanceof Uint8Array ? request.body : undefined
    const entry: Sent = {
      command: context.commandName ?? '?',
      input: args.input as Record<string, unknown>,
      headers: { ...request.headers },
      ...(body && { bodyLength: body.length, bodyCrc32: crcBase64(crc32(body)) }),
      sentAt: ++seq
    }
    sent.push(entry)
    try {
      return await next(args)
    } finally {
      entry.settledAt = ++seq
    }
  }, { step: 'deserialize', name: 'testWire' })
  return sent
}

const crcBase64 = (crc: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(crc)
  return b.toString('base64')
}

t.test('each part goes with a CRC32 of its bytes and UNSIGNED-PAYLOAD: the signer does not hash it again', async (t) => {
  const s = store('crc')
  const sent = record(s)
  await s.putFile('big', bigPath, { sha256: sha256(big), size: big.length }, 'application/octet-stream')
  await s.putFile('small', smallPath, { sha256: sha256(small) }, 'text/plain')
  const create = sent.filter((x) => x.command === 'CreateMultipartUploadCommand')
  t.equal(create.length, 1)
  t.equal(create[0]!.headers['x-amz-checksum-algorithm'], 'CRC32', 'the upload announces its parts\' checksum')
  const parts = sent.filter((x) => x.command === 'UploadPartCommand')
  t.same(parts.map((p) => p.input.PartNumber), [1, 2, 3])
  let offset = 0
  for (const p of parts) {
    t.equal(p.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD', `part ${String(p.input.PartNumber)} is not hashed to be signed`)
    t.equal(p.headers['x-amz-checksum-crc32'], crcBase64(crc32(big.subarray(offset, offset + p.bodyLength!))), 'the CRC32 of the file\'s bytes at that offset')
    t.equal(p.bodyCrc32, p.headers['x-amz-checksum-crc32'], 'and of the body sent')
    offset += p.bodyLength!
  }
  t.equal(offset, big.length, 'the parts are the file')
  const complete = sent.filter((x) => x.command === 'CompleteMultipartUploadCommand')
  t.same((complete[0]!.input.MultipartUpload as { Parts: Array<{ ChecksumCRC32?: string }> }).Parts.map((p) => p.ChecksumCRC32),
    parts.map((p) => p.headers['x-amz-checksum-crc32']), 'CompleteMultipartUpload lists each part\'s checksum')
  const put = sent.filter((x) => x.command === 'PutObjectCommand')
  t.equal(put.length, 1, 'a file of one part is a single PutObject')
  t.equal(put[0]!.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD')
  t.equal(put[0]!.headers['x-amz-checksum-crc32'], crcBase64(crc32(small)))
  t.same(await s.getBytes('big'), big, 's3rver took the unsigned parts')
})

t.test('the parts go over kept-alive connections, without Expect: 100-continue', async (t) => {
  // A forwarder to s3rver that counts the connections the store opens.
  let connections = 0
  const forwarder = createServer((client) => {
    connections++
    const upstream = createConnection({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) })
    client.pipe(upstream).pipe(client)
    const end = () => { client.destroy(); upstream.destroy() }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  const port = await listen(forwarder)
  t.teardown(() => new Promise((resolve) => forwarder.close(resolve)))
  const s = store('keepalive', `http://127.0.0.1:${port}`)
  t.teardown(() => s.close())
  const sent = record(s)
  await s.putFile('a', bigPath, { sha256: sha256(big), size: big.length }, 'x/y')
  await s.putFile('b', bigPath, { sha256: sha256(big), size: big.length }, 'x/y')
  const parts = sent.filter((x) => x.command === 'UploadPartCommand')
  t.equal(parts.length, 6)
  t.ok(parts.every((p) => p.headers.Expect === undefined && p.headers.expect === undefined), 'no part asks to continue')
  // 2 parts in flight and the create/complete beside them; a connection per part would be 6 more.
  t.ok(connections <= 3, `${connections} connections for 10 requests`)
})

t.test('a file of exactly two parts, and an empty file', async (t) => {
  const s = store('exact')
  const sent = record(s)
  const two = big.subarray(0, 10 * MiB)
  const twoPath = join(dir, 'two.qcow2')
  await writeFile(twoPath, two)
  t.same(await s.putFile('two', twoPath, { sha256: sha256(two), size: two.length }, 'x/y'), { size: two.length, sha256: sha256(two), linked: false })
  t.same(sent.filter((x) => x.command === 'UploadPartCommand').map((p) => p.bodyLength), [5 * MiB, 5 * MiB])
  t.same(await s.getBytes('two'), two)
  const emptyPath = join(dir, 'empty')
  await writeFile(emptyPath, '')
  t.same(await s.putFile('empty', emptyPath, { sha256: sha256(Buffer.alloc(0)), size: 0 }, 'x/y'), { size: 0, sha256: sha256(Buffer.alloc(0)), linked: false })
  t.same(await s.getBytes('empty'), Buffer.alloc(0))
})

t.test('a short file is refused before its last part: the upload is aborted and nothing is visible', async (t) => {
  const s = store('short')
  const sent = record(s)
  // What meta.json describes, and the file as a cut copy left it: 10 MiB + 1 byte of 12 MiB + 12345.
  const shortPath = join(dir, 'short.qcow2')
  await writeFile(shortPath, big.subarray(0, 10 * MiB + 1))
  const err = await s.putFile('disk', shortPath, { sha256: sha256(big), size: big.length }, 'x/y').catch((e: unknown) => e)
  t.ok(err instanceof IntegrityError, 'IntegrityError')
  t.match((err as Error).message, `${10 * MiB + 1} bytes, meta.json says ${big.length}`)
  const parts = sent.filter((x) => x.command === 'UploadPartCommand')
  t.same(parts.map((p) => p.input.PartNumber), [1, 2], 'the last part, one byte, is never sent')
  t.equal(sent.filter((x) => x.command === 'CompleteMultipartUploadCommand').length, 0)
  const aborts = sent.filter((x) => x.command === 'AbortMultipartUploadCommand')
  t.equal(aborts.length, 1)
  t.equal(aborts[0]!.input.UploadId, parts[0]!.input.UploadId, 'the abort names the upload the parts went to')
  t.ok(parts.every((p) => p.settledAt! < aborts[0]!.sentAt), 'after every part had settled')
  // s3rver 3.7 answers AbortMultipartUpload with 405 and has no ListMultipartUploads:
  // the refusal is still an IntegrityError, with the abort's failure as its cause.
  const cause = (err as Error).cause as Error | undefined
  t.ok(cause === undefined || cause.name === 'MethodNotAllowed', `abort: ${cause?.name ?? 'done'}`)
  t.same(await list('short/'), [], 'nothing listed')
  t.equal(await s.head('disk'), undefined)
  await noUpload(t, 'short/disk')
})

t.test('a part that cannot be sent fails the upload and aborts it', async (t) => {
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) }, t)
  const s = store('cut', proxy.url, 5000)
  const sent = record(s)
  proxy.cutAfter = MiB
  await t.rejects(s.putFile('disk', bigPath, { sha256: sha256(big), size: big.length }, 'x/y'),
    { message: /^S3 upload to s3:\/\/cosa-builds\/cut\/disk failed: .*aborting the multipart upload failed too/ })
  t.ok(proxy.cuts > 0, 'the proxy cut the parts')
  const parts = sent.filter((x) => x.command === 'UploadPartCommand')
  const aborts = sent.filter((x) => x.command === 'AbortMultipartUploadCommand')
  t.ok(parts.length >= 2, `${parts.length} part attempts`)
  t.equal(aborts.length, 1)
  t.ok(parts.every((p) => p.settledAt! < aborts[0]!.sentAt), 'no part attempt was still open when the abort went out')
  t.equal(sent.filter((x) => x.command === 'CompleteMultipartUploadCommand').length, 0)
  t.same(await list('cut/'), [], 'nothing listed')
})

t.test('a sha256 thread that dies mid-upload fails it: aborted after the parts settle, nothing visible, the next upload works', async (t) => {
  const s = store('dies')
  const sent = record(s)
  const hashing = (s as unknown as { hashing: { current?: { worker: Worker } } }).hashing
  let killed = false
  ;(s as unknown as { client: S3Client }).client.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === 'UploadPartCommand' && !killed) {
      killed = true
      await hashing.current!.worker.terminate()
    }
    return next(args)
  }, { step: 'initialize', name: 'testKillThread' })
  await t.rejects(s.putFile('disk', bigPath, { sha256: sha256(big), size: big.length }, 'x/y'),
    { message: /^S3 upload to s3:\/\/cosa-builds\/dies\/disk failed: .*the sha256 thread exited/ })
  const parts = sent.filter((x) => x.command === 'UploadPartCommand')
  const aborts = sent.filter((x) => x.command === 'AbortMultipartUploadCommand')
  t.ok(parts.length >= 1 && parts.length <= 2, `${parts.length} parts sent, never the last`)
  t.equal(aborts.length, 1)
  t.ok(parts.every((p) => p.settledAt! < aborts[0]!.sentAt), 'the abort went out after every part had settled')
  t.equal(sent.filter((x) => x.command === 'CompleteMultipartUploadCommand').length, 0)
  t.same(await list('dies/'), [], 'nothing listed')

  const again = store('dies')
  t.same(await again.putFile('disk', bigPath, { sha256: sha256(big), size: big.length }, 'x/y'), { size: big.length, sha256: sha256(big), linked: false })
  t.same(await s.putFile('disk2', bigPath, { sha256: sha256(big), size: big.length }, 'x/y').then((r) => r.sha256), sha256(big),
    'the store that lost its thread started another')
  await s.close()
  t.equal(hashing.current, undefined, 'close() ended the thread')
  await again.close()
})

t.test('a wrong size rejects, even with the right sha256', async (t) => {
  const s = store('badsize')
  await t.rejects(s.putFile('big', bigPath, { sha256: sha256(big), size: big.length - 1 }, 'x/y'), { code: 'INTEGRITY', message: /meta.json says/ })
  await t.rejects(s.putFile('small', smallPath, { sha256: sha256(small), size: 1 }, 'x/y'), IntegrityError)
  t.same(await list('badsize/'), [])
})

t.test('a failed putFile leaves the object already under that key intact', async (t) => {
  const s = store('keep')
  await s.putFile('k', smallPath, { sha256: sha256(small).toUpperCase() }, 'text/plain')
  await t.rejects(s.putFile('k', bigPath, { sha256: 'f'.repeat(64) }, 'text/plain'), IntegrityError)
  t.same(await s.getBytes('k'), small)
})

t.test('a missing file rejects with a readable error', async (t) => {
  await t.rejects(store('nofile').putFile('k', join(dir, 'absent'), { sha256: '0'.repeat(64) }, 'x/y'), { message: /ENOENT/ })
})

t.test('putBytes and getBytes round trip; missing keys are undefined', async (t) => {
  const s = store('meta')
  const v1 = Buffer.from(JSON.stringify({ builds: [] }))
  const v2 = Buffer.from(JSON.stringify({ builds: [{ id: '1' }] }))
  await s.putBytes('s/builds/builds.json', v1, 'application/json')
  t.same(await s.getBytes('s/builds/builds.json'), v1)
  await s.putBytes('s/builds/builds.json', v2, 'application/json')
  t.same(await s.getBytes('s/builds/builds.json'), v2, 'overwritten whole')
  t.equal((await s.head('s/builds/builds.json'))?.size, v2.length)
  await s.putBytes('empty', Buffer.alloc(0), 'application/json')
  t.same(await s.getBytes('empty'), Buffer.alloc(0))

  t.equal(await s.getBytes('nope'), undefined)
  t.equal(await s.head('nope'), undefined)
  t.equal(await s.get('nope'), undefined)
  t.equal(await s.get('nope', { start: 0, end: 1 }), undefined)
})

t.test('deletePrefix removes only keys under that prefix', async (t) => {
  const s = store()
  for (const k of ['a/1', 'a/sub/2', 'ab/3', 'a']) await s.putBytes(k, Buffer.from(k), 'text/plain')
  await s.deletePrefix('a/')
  t.same(await list('a'), ['a', 'ab/3'])
  t.same(await s.getBytes('ab/3'), Buffer.from('ab/3'))
  await s.deletePrefix('nothing/here/')
  await t.rejects(s.deletePrefix(''), /refusing/)
  await t.rejects(s.deletePrefix('a'), /refusing/)
})

t.test('deletePrefix pages through more than one listing', async (t) => {
  const s3p = await startS3Process(t)
  const s = store('many', s3p.endpoint)
  const keys = Array.from({ length: 1001 }, (_, i) => `s/builds/1/f${i}`)
  for (let i = 0; i < keys.length; i += 50) {
    await Promise.all(keys.slice(i, i + 50).map((k) => s.putBytes(k, Buffer.from('x'), 'text/plain')))
  }
  await s.putBytes('s/builds/10/keep', Buffer.from('x'), 'text/plain')
  await s.deletePrefix('s/builds/1/')
  t.equal(await s.head(keys[0]!), undefined)
  t.equal(await s.head(keys[1000]!), undefined, 'the key on the second page went too')
  t.ok(await s.head('s/builds/10/keep'))
})

t.test('DeleteObjects carries a Content-MD5 of its body', async (t) => {
  const seen: Array<{ url: string, md5: string | undefined, body: string }> = []
  const capture = createHttpServer((req, res) => {
    let body = ''
    req.on('data', (d: Buffer) => { body += d.toString() })
    req.on('end', () => {
      res.setHeader('content-type', 'application/xml')
      if (req.method === 'GET') {
        // The listing deletePrefix asks for first: two keys.
        return res.end('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
          '<Name>cosa-builds</Name><Prefix>a/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>' +
          '<Contents><Key>a/1</Key><Size>1</Size></Contents><Contents><Key>a/2</Key><Size>1</Size></Contents></ListBucketResult>')
      }
      seen.push({ url: req.url ?? '', md5: req.headers['content-md5'] as string | undefined, body })
      res.end('<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>')
    })
  })
  const port = await listen(capture)
  t.teardown(() => { capture.closeAllConnections(); capture.close() })
  await store('', `http://127.0.0.1:${port}`).deletePrefix('a/')
  t.equal(seen.length, 1)
  t.match(seen[0]!.url, /[?&]delete/)
  t.match(seen[0]!.body, /<Key>a\/1<\/Key>/)
  t.equal(seen[0]!.md5, createHash('md5').update(seen[0]!.body).digest('base64'))
})

t.test('the prefix option places keys under it', async (t) => {
  const s = store('p/q')
  await s.putBytes('x/y', Buffer.from('y'), 'text/plain')
  await s.putFile('x/z', smallPath, { sha256: sha256(small) }, 'text/plain')
  t.same(await list('p/'), ['p/q/x/y', 'p/q/x/z'])
  t.equal(s.location('x/y'), `s3://${s3.bucket}/p/q/x/y`)
  t.equal(await store().getBytes('x/y'), undefined, 'not at the bucket root')
  t.same(await store('p').getBytes('q/x/y'), Buffer.from('y'))
  await s.deletePrefix('x/')
  t.same(await list('p/'), [])
})

t.test('bad options are refused', async (t) => {
  t.throws(() => new S3Store({ region: 'r', bucket: 'b', prefix: 'a/', forcePathStyle: true }), /prefix/)
  t.throws(() => new S3Store({ region: 'r', bucket: 'b', prefix: '', forcePathStyle: true, partSizeBytes: MiB }), /5 MiB/)
  t.equal(await new S3Store({ region: 'r', bucket: 'b', prefix: '', forcePathStyle: false }).freeBytes(), undefined)
})

async function listen (server: Server | HttpServer) {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

t.test('an unreachable server fails fast, without hanging', async (t) => {
  const closed = createServer()
  const port = await listen(closed)
  await new Promise((resolve) => closed.close(resolve))
  const s = store('', `http://127.0.0.1:${port}`, 2000)
  const started = Date.now()
  await t.rejects(s.putFile('k', bigPath, { sha256: sha256(big) }, 'x/y'), { message: /S3 upload to s3:\/\/cosa-builds\/k failed: .*ECONNREFUSED/ })
  await t.rejects(s.head('k'), /ECONNREFUSED/, 'a failure is not "absent"')
  await t.rejects(s.getBytes('k'), /ECONNREFUSED/)
  await t.rejects(s.putBytes('k', small, 'x/y'), /ECONNREFUSED/)
  await t.rejects(s.deletePrefix('a/'), /ECONNREFUSED/)
  t.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`)
})

t.test('a server that never answers times out', async (t) => {
  const sockets = new Set<Socket>()
  const silent = createServer((socket) => { sockets.add(socket); socket.resume() })
  const port = await listen(silent)
  t.teardown(() => { for (const sk of sockets) sk.destroy(); silent.close() })
  const s = store('', `http://127.0.0.1:${port}`, 500)
  const started = Date.now()
  await t.rejects(s.putFile('k', smallPath, { sha256: sha256(small) }, 'x/y'), { message: /failed: TimeoutError/ })
  await t.rejects(s.head('k'), /TimeoutError/)
  const ms = Date.now() - started
  // Three attempts of 500 ms each, plus backoff, per call.
  t.ok(ms < 10_000, `took ${ms} ms`)
})
