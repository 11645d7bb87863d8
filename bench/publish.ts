// Publishing a 2 GiB artifact (issue #4), side by side with its baseline in
// the same run: `openssl dgst -sha256` of the same file.
//  - local, hard link: LocalStore.putFile of a single-link file on the
//    store's filesystem (one hashing read pass, then link);
//  - local, copy: the same with the source at two links, which forces the
//    hashing copy to a staging file, fsync and rename (2 GiB written);
//  - S3: S3Store.putFile to s3rver on loopback, s3rver in a process of its own.
// Each publish runs in a child node, which reports the putFile time and its
// peak RSS (maxRSS); an idle child that only imports the store module is the
// RSS baseline. When root can drop the page cache, every variant is measured
// cold (sync + drop_caches first) and then warm; otherwise warm only.
//   node --import tsx bench/publish.ts
// Environment: BENCH_ROUNDS (3), BENCH_SIZE_MIB (2048), BENCH_S3 (S3 variants,
// comma-separated <partMiB>x<queueSize>[u], `u` = an experiment that sends
// UploadPart with UNSIGNED-PAYLOAD, so the SDK does not hash each part).
import type { PathLike } from 'node:fs'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { link, lstat, mkdtemp, open, readdir, readFile, rm, statfs, unlink, writeFile } from 'node:fs/promises'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { S3Client } from '@aws-sdk/client-s3'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const THIS = fileURLToPath(import.meta.url)
const KEY = 'bench/builds/1/x86_64/disk.qcow2'
const CONTENT_TYPE = 'application/octet-stream'

interface S3Variant { partMiB: number, queue: number, unsigned: boolean }

type ChildSpec =
  | { kind: 'idle-local' }
  | { kind: 'idle-s3' }
  | { kind: 'local', root: string, path: string, sha256: string, size: number } & ReadOpts
  | { kind: 's3', endpoint: string, bucket: string, credentials: { accessKeyId: string, secretAccessKey: string },
    key: string, path: string, sha256: string, size: number } & S3Variant & ReadOpts

/** Experiment: a default highWaterMark for fs.createReadStream, which both stores read with (64 KiB). */
interface ReadOpts { hwmKiB?: number | undefined }

interface ChildResult { seconds: number, linked: boolean, maxRssKiB: number, cpuSeconds: number }

// ---------------------------------------------------------------- child side
// Only node builtins are imported statically, so that the idle child's RSS is
// node + tsx + the store module and nothing of the parent's.

async function child (spec: ChildSpec): Promise<ChildResult> {
  if ('hwmKiB' in spec && spec.hwmKiB) {
    // The stores import createReadStream by name: patch it before they are
    // imported, and let the ESM named export follow the CommonJS one.
    const highWaterMark = spec.hwmKiB * 1024
    const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs')
    const original = fs.createReadStream
    fs.createReadStream = ((path: PathLike, options?: object) =>
      original(path, { highWaterMark, ...options })) as typeof fs.createReadStream
    syncBuiltinESMExports()
  }
  let seconds = 0
  let linked = false
  if (spec.kind === 'idle-local') {
    const { LocalStore } = await import('../src/artifacts/local-store.js')
    void new LocalStore(tmpdir())
  } else if (spec.kind === 'idle-s3') {
    const { S3Store } = await import('../src/artifacts/s3-store.js')
    void new S3Store({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', bucket: 'b', prefix: '', forcePathStyle: true })
  } else if (spec.kind === 'local') {
    const { LocalStore } = await import('../src/artifacts/local-store.js')
    const store = new LocalStore(spec.root)
    const t0 = performance.now()
    const res = await store.putFile(KEY, spec.path, { sha256: spec.sha256, size: spec.size })
    seconds = (performance.now() - t0) / 1000
    linked = res.linked
  } else {
    const { S3Store } = await import('../src/artifacts/s3-store.js')
    const store = new S3Store({
      endpoint: spec.endpoint,
      region: 'us-east-1',
      bucket: spec.bucket,
      prefix: '',
      forcePathStyle: true,
      credentials: spec.credentials,
      partSizeBytes: spec.partMiB * MiB,
      queueSize: spec.queue,
      requestTimeoutMs: 300_000
    })
    if (spec.unsigned) {
      // Experiment only: the signer hashes every Buffer body it signs (a
      // second sha256 pass over the file, on the event loop) unless the
      // request already carries x-amz-content-sha256.
      const client = (store as unknown as { client: S3Client }).client
      client.middlewareStack.add((next, context) => async (args) => {
        const request = args.request as { headers?: Record<string, string> }
        if (context.commandName === 'UploadPartCommand' && request.headers) {
          request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'
        }
        return next(args)
      }, { step: 'build', name: 'benchUnsignedPayload' })
    }
    const t0 = performance.now()
    await store.putFile(spec.key, spec.path, { sha256: spec.sha256, size: spec.size }, CONTENT_TYPE)
    seconds = (performance.now() - t0) / 1000
  }
  const ru = process.resourceUsage()
  return { seconds, linked, maxRssKiB: ru.maxRSS, cpuSeconds: (ru.userCPUTime + ru.systemCPUTime) / 1e6 }
}

if (process.argv[2] === '--child') {
  const result = await child(JSON.parse(process.argv[3]!) as ChildSpec)
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}

// --------------------------------------------------------------- parent side

const { execa } = await import('execa')
const { fmt, median, ROOT } = await import('./lib.js')
const { startS3Process, S3RVER_CREDENTIALS } = await import('../test/s3-server.js')
const { S3Store } = await import('../src/artifacts/s3-store.js')

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 2048) * MiB
const S3_VARIANTS: S3Variant[] = (process.env.BENCH_S3 ?? '8x4').split(',').map((s) => {
  const m = /^(\d+)x(\d+)(u?)$/.exec(s.trim())
  if (!m) throw new Error(`BENCH_S3: "${s}" is not <partMiB>x<queueSize>[u]`)
  return { partMiB: Number(m[1]), queue: Number(m[2]), unsigned: m[3] === 'u' }
})
// Source, a copy in the store (copy path), and s3rver's parts plus the
// object it assembles from them: 3.5× the file, with a margin.
const NEED = Math.ceil(3.5 * SIZE)

const runChild = async (spec: ChildSpec) => {
  const { stdout } = await execa(process.execPath, ['--import', 'tsx', THIS, '--child', JSON.stringify(spec)], { cwd: ROOT })
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildResult
}

/** Writes dirty pages back, then drops the page cache when `cold`; false when that is refused. */
async function flush (cold: boolean) {
  await execa('sync')
  if (!cold) return true
  try {
    await writeFile('/proc/sys/vm/drop_caches', '3')
    return true
  } catch {
    return false
  }
}

/** utime + stime of a process, in seconds (USER_HZ = 100 on Linux). */
async function cpuOf (pid: number | undefined) {
  if (pid === undefined) return 0
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** The s3rver child serving `dir` (startS3Process does not hand out its pid). */
async function pidServing (dir: string) {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes('s3rver') && cmdline.split('\0').includes(dir)) return Number(entry)
  }
  return undefined
}

const fs0 = await statfs(tmpdir())
const free = fs0.bavail * fs0.bsize
if (free < NEED) {
  console.error(`bench/publish: ${fmt(free / GiB, 1)} GiB free under ${tmpdir()}, this needs ${fmt(NEED / GiB, 1)} GiB ` +
    '(the source, a copy in the store, s3rver\'s parts and the object it assembles). Set TMPDIR or BENCH_SIZE_MIB.')
  process.exit(1)
}

const work = await mkdtemp(join(tmpdir(), 'cosa-bench-publish-'))
let s3: Awaited<ReturnType<typeof startS3Process>> | undefined
let cleaned: Promise<void> | undefined
const cleanup = () => (cleaned ??= (async () => {
  await s3?.close().catch((err: unknown) => console.error('s3rver close:', err))
  await rm(work, { recursive: true, force: true })
})())
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { void cleanup().finally(() => process.exit(130)) })
}

interface Sample { seconds: number, maxRssKiB?: number, cpuSeconds?: number, serverCpuSeconds?: number }
type Cache = 'cold' | 'warm'

try {
  // Incompressible and every block distinct: AES-128-CTR of zeros, hashed as
  // it is written, then fsynced so that a cold read comes from the disk.
  const file = join(work, 'disk.qcow2')
  const t0 = performance.now()
  const cipher = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16))
  const zeros = Buffer.alloc(64 * MiB)
  const hash = createHash('sha256')
  const fh = await open(file, 'wx')
  try {
    for (let done = 0; done < SIZE; done += zeros.length) {
      const block = cipher.update(zeros.subarray(0, Math.min(zeros.length, SIZE - done)))
      hash.update(block)
      await fh.write(block)
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
  const sha256 = hash.digest('hex')
  console.error(`wrote ${fmt(SIZE / MiB)} MiB in ${fmt((performance.now() - t0) / 1000, 1)} s, sha256 ${sha256}`)

  s3 = await startS3Process()
  const s3pid = await pidServing(s3.dir)
  const s3store = new S3Store({
    endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, prefix: '', forcePathStyle: true, credentials: S3RVER_CREDENTIALS
  })

  const canDrop = await flush(true)
  const caches: Cache[] = canDrop ? ['cold', 'warm'] : ['warm']
  if (!canDrop) console.error('cannot write /proc/sys/vm/drop_caches: warm-cache figures only')

  const s3Name = (v: S3Variant) => `S3Store.putFile → s3rver, ${v.partMiB} MiB × ${v.queue}${v.unsigned ? ', UNSIGNED-PAYLOAD parts (experiment)' : ''}`
  const variants: Array<{ name: string, run: (n: number) => Promise<Sample> }> = [
    {
      name: '`openssl dgst -sha256` (baseline)',
      run: async () => {
        const t = performance.now()
        const { stdout } = await execa('openssl', ['dgst', '-sha256', '-r', file])
        const seconds = (performance.now() - t) / 1000
        if (!stdout.startsWith(sha256)) throw new Error(`openssl: ${stdout}`)
        return { seconds }
      }
    },
    {
      name: 'LocalStore.putFile, hard link (1 read pass)',
      run: async (n) => {
        const root = join(work, `store-${n}`)
        if ((await lstat(file)).nlink !== 1) throw new Error('source has more than one link')
        try {
          const r = await runChild({ kind: 'local', root, path: file, sha256, size: SIZE })
          if (!r.linked) throw new Error('LocalStore copied where it should have linked')
          return r
        } finally {
          await rm(root, { recursive: true, force: true })
        }
      }
    },
    {
      name: 'LocalStore.putFile, copy + fsync (source at 2 links)',
      run: async (n) => {
        const root = join(work, `store-${n}`)
        const extra = `${file}.link`
        await link(file, extra)
        try {
          const r = await runChild({ kind: 'local', root, path: file, sha256, size: SIZE })
          if (r.linked) throw new Error('LocalStore linked a file with two links')
          return r
        } finally {
          await rm(root, { recursive: true, force: true })
          await unlink(extra)
        }
      }
    },
    ...S3_VARIANTS.map((v) => ({
      name: s3Name(v),
      run: async (n: number): Promise<Sample> => {
        const key = `${KEY}.${n}`
        const cpu0 = await cpuOf(s3pid)
        try {
          const r = await runChild({
            kind: 's3', endpoint: s3!.endpoint, bucket: s3!.bucket, credentials: S3RVER_CREDENTIALS, key, path: file, sha256, size: SIZE, ...v
          })
          return { ...r, serverCpuSeconds: (await cpuOf(s3pid)) - cpu0 }
        } finally {
          await s3store.delete([key])
        }
      }
    }))
  ]

  const samples = new Map<string, Sample[]>()
  let n = 0
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order every round; cold first, then warm, for each variant.
    const order = variants.map((_, i) => variants[(i + round) % variants.length]!)
    for (const v of order) {
      for (const cache of caches) {
        await flush(cache === 'cold')
        const s = await v.run(n++)
        const k = `${cache}\0${v.name}`
        samples.set(k, [...(samples.get(k) ?? []), s])
        console.error(`round ${round + 1} ${cache} ${v.name}: ${fmt(s.seconds, 2)} s` +
          (s.maxRssKiB ? `, ${fmt(s.maxRssKiB / 1024)} MiB RSS, ${fmt(s.cpuSeconds ?? 0, 1)} CPU-s` : '') +
          (s.serverCpuSeconds !== undefined ? `, s3rver ${fmt(s.serverCpuSeconds, 1)} CPU-s` : ''))
      }
    }
  }
  const idle = { local: await runChild({ kind: 'idle-local' }), s3: await runChild({ kind: 'idle-s3' }) }

  const out = (line: string) => console.log(line)
  out(`\n${fmt(SIZE / MiB)} MiB, median of ${ROUNDS} rounds; MiB/s is the file size over the median time; ` +
    'peak RSS is the highest maxRSS of the publishing child over all its runs, CPU the median of its user + system time.\n')
  out(`Idle child RSS (node + tsx + the store module, no publish): LocalStore ${fmt(idle.local.maxRssKiB / 1024)} MiB, ` +
    `S3Store ${fmt(idle.s3.maxRssKiB / 1024)} MiB.\n`)
  for (const cache of caches) {
    const base = median(samples.get(`${cache}\0${variants[0]!.name}`)!.map((s) => s.seconds))
    out(`${cache} cache:\n`)
    out('| variant | median s | × openssl | MiB/s | peak RSS MiB | publisher CPU s | s3rver CPU s | runs (s) |')
    out('|---|---:|---:|---:|---:|---:|---:|---|')
    for (const v of variants) {
      const xs = samples.get(`${cache}\0${v.name}`)!
      const m = median(xs.map((s) => s.seconds))
      const rss = xs.some((s) => s.maxRssKiB) ? fmt(Math.max(...xs.map((s) => s.maxRssKiB ?? 0)) / 1024) : '–'
      const cpu = xs.some((s) => s.cpuSeconds !== undefined) ? fmt(median(xs.map((s) => s.cpuSeconds ?? 0)), 1) : '–'
      const server = xs.some((s) => s.serverCpuSeconds !== undefined) ? fmt(median(xs.map((s) => s.serverCpuSeconds ?? 0)), 1) : '–'
      out(`| ${v.name} | ${fmt(m, 2)} | ${fmt(m / base, 2)}× | ${fmt(SIZE / MiB / m)} | ${rss} | ${cpu} | ${server} | ` +
        `${xs.map((s) => fmt(s.seconds, 2)).join(', ')} |`)
    }
    out('')
  }
} finally {
  await cleanup()
}
