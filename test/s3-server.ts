import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import S3rver from 's3rver'

// s3rver checks signatures against its one built-in account.
export const S3RVER_ACCESS_KEY_ID = 'S3RVER'
export const S3RVER_SECRET_ACCESS_KEY = 'S3RVER'
export const S3RVER_CREDENTIALS = { accessKeyId: S3RVER_ACCESS_KEY_ID, secretAccessKey: S3RVER_SECRET_ACCESS_KEY }
export const S3RVER_BUCKET = 'cosa-builds'

export interface S3Server {
  endpoint: string
  bucket: string
  /** s3rver's storage directory (its on-disk layout is s3rver's own). */
  dir: string
  close(): Promise<void>
}

type Teardown = { teardown(fn: () => unknown): void }

/** An in-process s3rver on a free loopback port, with an empty `cosa-builds` bucket. */
export async function startS3 (t?: Teardown): Promise<S3Server> {
  const dir = await mkdtemp(join(tmpdir(), 'cosa-buildd-s3rver-'))
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: S3RVER_BUCKET }]
  })
  let address
  try {
    address = await server.run()
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
  let closed: Promise<void> | undefined
  const close = () => (closed ??= (async () => {
    await server.close()
    await rm(dir, { recursive: true, force: true })
  })())
  t?.teardown(close)
  return { endpoint: `http://127.0.0.1:${address.port}`, bucket: S3RVER_BUCKET, dir, close }
}

/**
 * s3rver in a child node with OpenSSL's legacy provider. Its continuation
 * tokens are DES-encrypted, which OpenSSL 3 (Node >= 17) refuses: in process,
 * any listing longer than one page (1000 keys) fails with a 500.
 */
export async function startS3Process (t?: Teardown): Promise<S3Server> {
  const dir = await mkdtemp(join(tmpdir(), 'cosa-buildd-s3rver-'))
  const bin = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js')
  const child = spawn(process.execPath, [
    '--openssl-legacy-provider', bin, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent', '--configure-bucket', S3RVER_BUCKET
  ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } })
  const exited = once(child, 'exit')
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill()
    await exited
    await rm(dir, { recursive: true, force: true })
  }
  t?.teardown(close)
  let out = ''
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  try {
    const port = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const m = /listening on [\d.]+:(\d+)/.exec(out)
        if (m) resolve(m[1]!)
      })
      void exited.then(([code]) => reject(new Error(`s3rver exited (${String(code)}) before listening: ${out}`)))
    })
    return { endpoint: `http://127.0.0.1:${port}`, bucket: S3RVER_BUCKET, dir, close }
  } catch (err) {
    await close()
    throw err
  }
}
