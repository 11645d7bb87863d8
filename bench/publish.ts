// Publishing a 2 GiB artifact (issue #4), side by side with its baseline in
// the same run: `openssl dgst -sha256` of the same file.
//  - local, hard link: LocalStore.putFile of a single-link file on the
//    store's filesystem (one hashing read pass, then link);
//  - local, copy: the same with the source at two links, which forces the
//    hashing copy to a staging file, fsync and rename (2 GiB written);
//  - S3: S3Store.putFile to s3rver on loopback (its own process), and to a
//    stub S3 endpoint (also its own process) that reads and discards every
//    byte: what publishing costs the client, without s3rver's own work. The
//    stub comes on node:http ("stub", 64 KiB reads) and on a socket read
//    1 MiB at a time ("sink"), which takes less of the client's cores.
// Each publish runs in a child node that reports the putFile time, the CPU
// time putFile took and the child's peak RSS (maxRSS, as /usr/bin/time -v
// reports it) before and after putFile; an idle child that only imports the
// store module is the RSS baseline. openssl's CPU time is its shell's
// cutime + cstime from /proc. When root may drop the page
// cache, every variant is measured cold (sync + drop_caches first) and then
// warm; otherwise warm only. The order of the variants rotates every round.
//   npm run bench bench/publish.ts
// Environment:
//   BENCH_ROUNDS (3), BENCH_SIZE_MIB (2048);
//   BENCH_LOCAL: read sizes to run the local variants with, in KiB, 0 = as
//     the store reads (default 0,1024; see ReadOpts; empty: no local variant);
//   BENCH_S3: S3 variants, <s3rver|stub|sink>:<partMiB>x<queueSize>
//     (default s3rver:8x2,stub:8x2,sink:8x2; empty: none).
import type { PathLike } from 'node:fs'
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { link, lstat, mkdtemp, open, readdir, readFile, rm, statfs, unlink, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import { createServer as createNetServer, Socket, type Server as NetServer, type SocketConstructorOpts } from 'node:net'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const THIS = fileURLToPath(import.meta.url)
const KEY = 'bench/builds/1/x86_64/disk.qcow2'
const CONTENT_TYPE = 'application/octet-stream'

/**
 * Experiment: the highWaterMark that fs.createReadStream gets by default,
 * which is what both stores read the file with (Node's default is 64 KiB).
 */
interface ReadOpts { hwmKiB?: number | undefined }

interface S3Opts { server: 's3rver' | StubServer, partMiB: number, queue: number }

type ChildSpec =
  | { kind: 'idle-local' }
  | { kind: 'idle-s3' }
  | { kind: 'local', root: string, path: string, sha256: string, size: number } & ReadOpts
  | { kind: 's3', endpoint: string, bucket: string, credentials: { accessKeyId: string, secretAccessKey: string },
    key: string, path: string, sha256: string, size: number } & S3Opts

interface ChildResult { seconds: number, linked: boolean, maxRssKiB: number, rssBeforeKiB: number, cpuSeconds: number }

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
  let put: () => Promise<{ linked: boolean }>
  if (spec.kind === 'idle-local') {
    const { LocalStore } = await import('../src/artifacts/local-store.js')
    void new LocalStore(tmpdir())
    put = async () => ({ linked: false })
  } else if (spec.kind === 'idle-s3') {
    const { S3Store } = await import('../src/artifacts/s3-store.js')
    void new S3Store({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', bucket: 'b', prefix: '', forcePathStyle: true })
    put = async () => ({ linked: false })
  } else if (spec.kind === 'local') {
    const { LocalStore } = await import('../src/artifacts/local-store.js')
    const store = new LocalStore(spec.root)
    put = () => store.putFile(KEY, spec.path, { sha256: spec.sha256, size: spec.size })
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
    put = () => store.putFile(spec.key, spec.path, { sha256: spec.sha256, size: spec.size }, CONTENT_TYPE)
  }
  // The peak before putFile: start-up's own peak varies by 15-20 MiB from run to run.
  const rssBeforeKiB = process.resourceUsage().maxRSS
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const { linked } = await put()
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  return { seconds, linked, maxRssKiB: process.resourceUsage().maxRSS, rssBeforeKiB, cpuSeconds: (cpu.user + cpu.system) / 1e6 }
}

type StubServer = 'stub' | 'sink'

/**
 * Just enough of S3's multipart upload to take S3Store.putFile's bytes and
 * throw them away: what a request is answered, once its body has been read
 * (`bytes` of it). Prints "complete <key> <bytes>" for every completed upload.
 */
function stubAnswerer () {
  const received = new Map<string, number>()
  let uploads = 0
  const xml = (body: string) => `<?xml version="1.0" encoding="UTF-8"?>\n${body}`
  return (method: string, target: string, bytes: number): { status: number, etag?: string, xml?: string } => {
    const url = new URL(target, 'http://stub')
    const [, bucket = '', ...rest] = url.pathname.split('/')
    const key = decodeURIComponent(rest.join('/'))
    const q = url.searchParams
    const uploadId = q.get('uploadId')
    if (method === 'POST' && q.has('uploads')) {
      const id = `u${++uploads}`
      received.set(id, 0)
      return { status: 200, xml: xml(`<InitiateMultipartUploadResult><Bucket>${bucket}</Bucket><Key>${key}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`) }
    } else if (method === 'PUT' && uploadId && q.has('partNumber')) {
      received.set(uploadId, (received.get(uploadId) ?? 0) + bytes)
      return { status: 200, etag: `"${uploadId}-${q.get('partNumber')}"` }
    } else if (method === 'POST' && uploadId) {
      process.stdout.write(`complete ${key} ${received.get(uploadId) ?? 0}\n`)
      received.delete(uploadId)
      return { status: 200, xml: xml(`<CompleteMultipartUploadResult><Bucket>${bucket}</Bucket><Key>${key}</Key><ETag>"${uploadId}"</ETag></CompleteMultipartUploadResult>`) }
    } else if (method === 'DELETE' && uploadId) {
      received.delete(uploadId)
      return { status: 204 }
    } else if (method === 'PUT') {
      process.stdout.write(`complete ${key} ${bytes}\n`)
      return { status: 200, etag: '"single"' }
    }
    return { status: 501, xml: xml(`<Error><Code>NotImplemented</Code><Message>${method} ${url.search}</Message></Error>`) }
  }
}

const listening = (server: Server | NetServer) => server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`)
})

/** The stub on node:http, which reads a request body 64 KiB at a time. */
function stub () {
  const answer = stubAnswerer()
  listening(createServer((req, res) => {
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length })
    req.on('end', () => {
      const a = answer(req.method ?? '', req.url ?? '/', bytes)
      res.statusCode = a.status
      if (a.etag) res.setHeader('etag', a.etag)
      if (a.xml) res.setHeader('content-type', 'application/xml')
      res.end(a.xml)
    })
  }))
}

/**
 * The same stub with the least work per byte: it reads each connection 1 MiB
 * at a time into one buffer and parses only a request's head. node:http's
 * 64 KiB reads cost the stub 1.2-1.5 CPU-s per 2 GiB, taken from the 2 cores
 * the client runs on; a real S3 runs elsewhere. net.Server has no `onread`
 * option, so each accepted handle moves to a socket that has one.
 */
function sink () {
  const answer = stubAnswerer()
  const buffer = Buffer.allocUnsafe(MiB)
  listening(createNetServer({ pauseOnConnect: true }, (accepted) => {
    const internal = accepted as unknown as { _handle: unknown }
    const handle = internal._handle
    internal._handle = null
    let head = Buffer.alloc(0)
    let request = { method: '', target: '', left: -1, bytes: 0 }
    const onread = { buffer, callback: (n: number) => { consume(buffer.subarray(0, n)); return true } }
    const socket = new Socket({ handle, onread } as SocketConstructorOpts)
    const consume = (data: Buffer) => {
      while (data.length > 0 || request.left === 0) {
        if (request.left < 0) {
          const scan = head.length ? Buffer.concat([head, data]) : data
          const end = scan.indexOf('\r\n\r\n')
          if (end < 0) {
            // The buffer is read into again: keep a copy of the partial head.
            head = Buffer.from(scan)
            if (head.length > 64 * 1024) socket.destroy()
            return
          }
          const [line = '', ...fields] = scan.subarray(0, end).toString('latin1').split('\r\n')
          const [method = '', target = '/'] = line.split(' ')
          const length = fields.find((f) => /^content-length:/i.test(f))?.split(':')[1]
          request = { method, target, left: Number(length ?? 0), bytes: 0 }
          // The SDK asks before a large body, and waits up to a second for this.
          if (fields.some((f) => /^expect:\s*100-continue/i.test(f))) socket.write('HTTP/1.1 100 Continue\r\n\r\n')
          data = scan.subarray(end + 4)
          head = Buffer.alloc(0)
        } else if (request.left > 0) {
          const take = Math.min(request.left, data.length)
          request.left -= take
          request.bytes += take
          data = data.subarray(take)
        } else {
          const a = answer(request.method, request.target, request.bytes)
          const body = a.xml ?? ''
          socket.write(`HTTP/1.1 ${a.status} ${a.status === 200 ? 'OK' : 'Other'}\r\n${a.etag ? `etag: ${a.etag}\r\n` : ''}` +
            `${a.xml ? 'content-type: application/xml\r\n' : ''}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
          request = { method: '', target: '', left: -1, bytes: 0 }
        }
      }
    }
    socket.on('error', () => socket.destroy())
    socket.resume()
  }))
}

if (process.argv[2] === '--child') {
  const result = await child(JSON.parse(process.argv[3]!) as ChildSpec)
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
} else if (process.argv[2] === '--stub') {
  stub()
} else if (process.argv[2] === '--sink') {
  sink()
} else {
  await main()
}

// --------------------------------------------------------------- parent side

async function main () {
  const { execa } = await import('execa')
  const { fmt, median, ROOT } = await import('./lib.js')
  const { startS3Process, S3RVER_CREDENTIALS } = await import('../test/s3-server.js')
  const { S3Store } = await import('../src/artifacts/s3-store.js')

  const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
  const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 2048) * MiB
  const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(',').map((s) => s.trim()).filter(Boolean)
  const LOCAL_READS = list('BENCH_LOCAL', '0,1024').map(Number)
  const S3_VARIANTS: S3Opts[] = list('BENCH_S3', 's3rver:8x2,stub:8x2,sink:8x2').map((s) => {
    const m = /^(s3rver|stub|sink):(\d+)x(\d+)$/.exec(s)
    if (!m) throw new Error(`BENCH_S3: "${s}" is not <s3rver|stub|sink>:<partMiB>x<queueSize>`)
    return { server: m[1] as S3Opts['server'], partMiB: Number(m[2]), queue: Number(m[3]) }
  })
  // The source, a copy in the store, s3rver's parts and the object it
  // assembles from them (it keeps the parts until the object is written).
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
    if (pid === undefined) return NaN
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
    process.exitCode = 1
    return
  }

  const work = await mkdtemp(join(tmpdir(), 'cosa-bench-publish-'))
  let s3: Awaited<ReturnType<typeof startS3Process>> | undefined
  const stubProcesses: Array<ReturnType<typeof execa>> = []
  let cleaned: Promise<void> | undefined
  const cleanup = () => (cleaned ??= (async () => {
    for (const proc of stubProcesses) proc.kill()
    for (const proc of stubProcesses) await proc.catch(() => {})
    await s3?.close().catch((err: unknown) => console.error('s3rver close:', err))
    await rm(work, { recursive: true, force: true })
  })())
  // `on`, not `once`: execa's exit hook re-raises a signal that no other
  // listener is left for, which would end this process before its cleanup.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => { void cleanup().finally(() => process.exit(130)) })
  }

  interface Sample { seconds: number, maxRssKiB?: number, rssBeforeKiB?: number, cpuSeconds?: number, serverCpuSeconds?: number }
  type Cache = 'cold' | 'warm'

  try {
    // Incompressible, every block distinct: AES-128-CTR of zeros, hashed as
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

    const servers: Partial<Record<S3Opts['server'], { endpoint: string, pid: number | undefined, after: (key: string) => Promise<void> }>> = {}
    if (S3_VARIANTS.some((v) => v.server === 's3rver')) {
      const server = s3 = await startS3Process()
      const store = new S3Store({
        endpoint: server.endpoint, region: 'us-east-1', bucket: server.bucket, prefix: '', forcePathStyle: true, credentials: S3RVER_CREDENTIALS
      })
      servers.s3rver = {
        endpoint: server.endpoint,
        pid: await pidServing(server.dir),
        after: async (key) => {
          const head = await store.head(key)
          if (head?.size !== SIZE) throw new Error(`s3rver holds ${String(head?.size)} bytes under ${key}, not ${SIZE}`)
          await store.deletePrefix(`${key.split('/').slice(0, -1).join('/')}/`)
        }
      }
    }
    for (const kind of ['stub', 'sink'] as const) {
      if (!S3_VARIANTS.some((v) => v.server === kind)) continue
      const proc = execa(process.execPath, ['--import', 'tsx', THIS, `--${kind}`], { cwd: ROOT, buffer: false })
      stubProcesses.push(proc)
      let out = ''
      proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
      const port = await new Promise<string>((resolve, reject) => {
        const timer = setInterval(() => {
          const m = /listening (\d+)/.exec(out)
          if (m) { clearInterval(timer); resolve(m[1]!) }
        }, 20)
        proc.catch((err: unknown) => { clearInterval(timer); reject(err as Error) })
      })
      servers[kind] = {
        endpoint: `http://127.0.0.1:${port}`,
        pid: proc.pid,
        after: async (key) => {
          const m = new RegExp(`complete ${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} (\\d+)`).exec(out)
          if (Number(m?.[1]) !== SIZE) throw new Error(`the ${kind} took ${m?.[1] ?? 'no'} bytes for ${key}, not ${SIZE}`)
        }
      }
    }

    // The first children after a change to the code peaked 15-20 MiB higher
    // before putFile began (tsx compiling it): these warm its cache, which
    // was not always enough, so the tables also say what putFile added.
    for (const kind of ['idle-local', 'idle-s3'] as const) await runChild({ kind })
    const loadBefore = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
    const canDrop = await flush(true)
    const caches: Cache[] = canDrop ? ['cold', 'warm'] : ['warm']
    if (!canDrop) console.error('cannot write /proc/sys/vm/drop_caches: warm-cache figures only')

    const reads = (hwmKiB: number | undefined) => hwmKiB ? `, ${hwmKiB >= 1024 ? `${hwmKiB / 1024} MiB` : `${hwmKiB} KiB`} reads (experiment)` : ''
    const localRun = (copy: boolean, hwmKiB: number) => async (n: number): Promise<Sample> => {
      const root = join(work, `store-${n}`)
      const extra = `${file}.link`
      if (copy) await link(file, extra)
      else if ((await lstat(file)).nlink !== 1) throw new Error('the source has more than one link')
      try {
        const r = await runChild({ kind: 'local', root, path: file, sha256, size: SIZE, hwmKiB })
        if (r.linked === copy) throw new Error(`LocalStore ${r.linked ? 'linked' : 'copied'} the file`)
        return r
      } finally {
        await rm(root, { recursive: true, force: true })
        if (copy) await unlink(extra)
      }
    }
    const variants: Array<{ name: string, run: (n: number) => Promise<Sample> }> = [
      {
        name: '`openssl dgst -sha256` (baseline)',
        run: async (): Promise<Sample> => {
          // The shell's own stat, read after openssl has been waited for, holds openssl's CPU time.
          const t = performance.now()
          const { stdout } = await execa('sh', ['-c', 'openssl dgst -sha256 -r "$1" && cat /proc/$$/stat', 'sh', file])
          const seconds = (performance.now() - t) / 1000
          const [digest = '', stat = ''] = stdout.split('\n')
          if (!digest.startsWith(sha256)) throw new Error(`openssl: ${stdout}`)
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
          return { seconds, cpuSeconds: (Number(fields[13]) + Number(fields[14])) / 100 }
        }
      },
      ...LOCAL_READS.map((hwmKiB) => ({ name: `LocalStore.putFile, hard link${reads(hwmKiB)}`, run: localRun(false, hwmKiB) })),
      ...LOCAL_READS.map((hwmKiB) => ({ name: `LocalStore.putFile, copy + fsync${reads(hwmKiB)}`, run: localRun(true, hwmKiB) })),
      ...S3_VARIANTS.map((v) => ({
        name: `S3Store.putFile → ${{ s3rver: 's3rver', stub: 'discarding stub', sink: 'discarding stub, 1 MiB reads' }[v.server]}, ${v.partMiB} MiB × ${v.queue}`,
        run: async (n: number): Promise<Sample> => {
          const server = servers[v.server]!
          const key = `${KEY}.${n}`
          const cpu0 = await cpuOf(server.pid)
          const r = await runChild({
            kind: 's3', endpoint: server.endpoint, bucket: 'cosa-builds', credentials: S3RVER_CREDENTIALS, key, path: file, sha256, size: SIZE, ...v
          })
          const serverCpuSeconds = (await cpuOf(server.pid)) - cpu0
          await server.after(key)
          return { ...r, serverCpuSeconds }
        }
      }))
    ]

    const samples = new Map<string, Sample[]>()
    let n = 0
    for (let round = 0; round < ROUNDS; round++) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length]!)
      for (const v of order) {
        for (const cache of caches) {
          await flush(cache === 'cold')
          const s = await v.run(n++)
          const k = `${cache}\0${v.name}`
          samples.set(k, [...(samples.get(k) ?? []), s])
          console.error(`round ${round + 1} ${cache} ${v.name}: ${fmt(s.seconds, 2)} s` +
            (s.maxRssKiB ? `, ${fmt(s.maxRssKiB / 1024)} MiB RSS (+${fmt((s.maxRssKiB - s.rssBeforeKiB!) / 1024)}), ${fmt(s.cpuSeconds ?? 0, 1)} CPU-s` : '') +
            (s.serverCpuSeconds !== undefined ? `, server ${fmt(s.serverCpuSeconds, 1)} CPU-s` : ''))
        }
      }
    }
    const idle = { local: await runChild({ kind: 'idle-local' }), s3: await runChild({ kind: 'idle-s3' }) }
    const loadAfter = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')

    const out = (line: string) => console.log(line)
    out(`\n${fmt(SIZE / MiB)} MiB, median of ${ROUNDS} rounds. MiB/s: the file's size over the median time. ` +
      'Peak RSS: the highest maxRSS of the publishing child over its runs; added: the most putFile raised it over ' +
      'the peak before it. CPU: medians of the CPU time (user + system) ' +
      'of putFile in the child (of openssl for the baseline), and of the S3 server process over the same upload.\n')
    out(`Load average (1, 5, 15 min) before: ${loadBefore}; after: ${loadAfter} (${cpus().length} CPUs).\n`)
    out(`Idle child (node + tsx + the store module, no publish): ${fmt(idle.local.maxRssKiB / 1024)} MiB RSS with ` +
      `LocalStore, ${fmt(idle.s3.maxRssKiB / 1024)} MiB with S3Store.\n`)
    for (const cache of caches) {
      const base = median(samples.get(`${cache}\0${variants[0]!.name}`)!.map((s) => s.seconds))
      out(`${cache} cache:\n`)
      out('| variant | median s | × openssl | MiB/s | peak RSS MiB | added MiB | CPU s | server CPU s | runs (s) |')
      out('|---|---:|---:|---:|---:|---:|---:|---:|---|')
      for (const v of variants) {
        const xs = samples.get(`${cache}\0${v.name}`)!
        const m = median(xs.map((s) => s.seconds))
        const col = (f: (s: Sample) => number | undefined, digits: number, pick: (ys: number[]) => number) => {
          const ys = xs.map(f).filter((y): y is number => y !== undefined)
          return ys.length ? fmt(pick(ys), digits) : '–'
        }
        out(`| ${v.name} | ${fmt(m, 2)} | ${fmt(m / base, 2)}× | ${fmt(SIZE / MiB / m)} | ` +
          `${col((s) => s.maxRssKiB && s.maxRssKiB / 1024, 0, (ys) => Math.max(...ys))} | ` +
          `${col((s) => s.maxRssKiB && (s.maxRssKiB - s.rssBeforeKiB!) / 1024, 0, (ys) => Math.max(...ys))} | ` +
          `${col((s) => s.cpuSeconds, 1, median)} | ${col((s) => s.serverCpuSeconds, 1, median)} | ` +
          `${xs.map((s) => fmt(s.seconds, 2)).join(', ')} |`)
      }
      out('')
    }
  } finally {
    await cleanup()
  }
}
