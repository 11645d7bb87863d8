// Copying a 2 GiB artifact back from a remote engine (issue #13 §2), side by
// side with its baseline in the same run: `openssl dgst -sha256` of the same
// file.
//  - pull: what a build on a `volume` workspace costs after it ends
//    (VolumeWorkspace.pull): getArchive over TCP + mutual TLS on loopback,
//    the tar parsed as it streams, each file hashed and written to the
//    service's copy of the workdir;
//  - stream + sha256: the same answer parsed and hashed, nothing written
//    (what the transfer itself costs);
//  - drain: the same answer read and thrown away (node's TLS alone);
//  - curl TLS, curl unix: the engine's archive endpoint read by curl into
//    /dev/null, over the same TLS listener and over the engine's Unix
//    socket: the floor the engine itself sets, whatever the client;
//  - upload: the build sends its files itself (PUT /v1/builds/{id}/workdir,
//    docs/engines.md#uploads): `tar | curl -T -` of the file from the
//    volume, as the recipe runs it, to a cosa-buildd server process (`node
//    dist/server.js`, as users start it) that supervises a running build on
//    that engine; its route parses the tar, hashes and writes the file into
//    its copy of the workdir;
//  - openssl: `openssl dgst -sha256` of the file where the engine keeps it
//    (the volume's directory), read from the same page cache.
// The engine is a dockerd of the bench's own (test/engine.ts: its own data
// root, a Unix socket and a TLS listener on 127.0.0.1, certificates made by
// openssl); the file sits in a named volume mounted by a container that is
// never started. Every variant is measured warm (the file is read once
// before), in rounds whose order rotates; medians are reported.
//   npm run bench bench/remote-transfer.ts
// Environment: BENCH_ROUNDS (3), BENCH_SIZE_MIB (2048), BENCH_VARIANTS (all;
// comma-separated), BENCH_SERVER_PROF (a directory for the server's --cpu-prof).
import { execa } from 'execa'
import { createHash, randomUUID } from 'node:crypto'
import { link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { extract } from 'tar-stream'
import { DataDir } from '../src/data-dir.js'
import { IMAGE, freePort } from '../test/helpers.js'
import { DockerEngine } from '../src/executor/docker/docker-engine.js'
import { VolumeWorkspace } from '../src/executor/docker/volume-workspace.js'
import { startEngine } from '../test/engine.js'
import { ROOT, exampleRepo, fmt, median } from './lib.js'

const MiB = 1024 * 1024
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SIZE_MIB = Number(process.env.BENCH_SIZE_MIB ?? 2048)
const FILE = 'artifact.bin'

/** startEngine takes a tap test for its teardown; the bench runs them itself. */
function teardowns () {
  const fns: Array<() => Promise<unknown>> = []
  return { t: { teardown: (fn: () => Promise<unknown>) => { fns.unshift(fn) } } as unknown as Test, run: async () => { for (const fn of fns) await fn() } }
}

async function timed (fn: () => Promise<string>) {
  const start = process.hrtime.bigint()
  const sha256 = await fn()
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, sha256 }
}

const COSA_BUILD = 'bench-1'

/**
 * A cosa-buildd server process with a build running on `engine` (a recipe
 * that waits): where the build's upload goes, with its token, and its volume
 * holding the file at builds/bench-1/x86_64/ (a hard link of `file`).
 */
async function uploadTarget (cleanup: ReturnType<typeof teardowns>, engine: Awaited<ReturnType<typeof startEngine>>, file: string) {
  await execa('npm', ['run', 'build'], { cwd: ROOT })
  const tls = engine.tls!
  const root = await mkdtemp(join(tmpdir(), 'cosa-bench-upload-'))
  const port = await freePort()
  const api = `http://127.0.0.1:${port}`
  await writeFile(join(root, 'config.json'), JSON.stringify({
    engines: [{ name: 'bench', host: `tcp://127.0.0.1:${tls.port}`, tls: { ca: tls.ca, cert: tls.cert, key: tls.key } }],
    builds: { resultUrl: api }
  }))
  const server = execa(process.execPath, [...(process.env.BENCH_SERVER_PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.BENCH_SERVER_PROF] : []), 'dist/server.js'], {
    cwd: ROOT,
    env: { COSA_BUILDD_CONFIG: join(root, 'config.json'), COSA_BUILDD_DATA_DIR: join(root, 'data'), COSA_BUILDD_PORT: String(port), COSA_BUILDD_ALLOW_FILE_URLS: '1', COSA_BUILDD_MIN_FREE_BYTES: '0', COSA_BUILDD_LOG_LEVEL: 'warn', NODE_OPTIONS: '' },
    stdio: 'ignore',
    reject: false
  })
  cleanup.t.teardown(async () => {
    server.kill('SIGTERM')
    await server
    await rm(root, { recursive: true, force: true })
  })
  const call = async (method: string, path: string, body?: unknown) => {
    for (let i = 0; ; i++) {
      try {
        const res = await fetch(api + path, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) })
        return await res.json() as any
      } catch (err) {
        if (i > 100) throw err
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    }
  }
  const repo = await exampleRepo()
  await call('PUT', '/v1/streams/up', { config: { url: `file://${repo}`, ref: 'main' }, recipe: [['shell', '--', 'sleep', '3600'], ['build']] })
  const { id } = await call('POST', '/v1/streams/up/builds', {})
  for (;;) {
    const inspect = await engine.docker('inspect', '--format', '{{json .Config.Env}} {{range .Mounts}}{{.Name}}{{end}}', `cosa-buildd-${id}`)
    const [env, volume] = inspect.stdout.split(' ')
    const token = /COSA_BUILDD_TOKEN=([^"]+)/.exec(env ?? '')?.[1]
    if (inspect.exitCode === 0 && token && volume) {
      const mountpoint = (await engine.docker('volume', 'inspect', '--format', '{{.Mountpoint}}', volume)).stdout.trim()
      await mkdir(join(mountpoint, 'builds', COSA_BUILD, 'x86_64'), { recursive: true })
      await link(file, join(mountpoint, 'builds', COSA_BUILD, 'x86_64', FILE))
      const received = join(root, 'data', 'streams', 'up', 'work', 'builds', COSA_BUILD, 'x86_64', FILE)
      return { url: `${api}/v1/builds/${id}/workdir`, token, mountpoint, received }
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

async function main () {
  const cleanup = teardowns()
  try {
    const engine = await startEngine(cleanup.t, { tls: true, images: [IMAGE] })
    const tls = engine.tls!
    // An image of nothing: the container is never started, it only holds the volume.
    await execa('bash', ['-c', `tar -cf - --files-from /dev/null | docker -H unix://${engine.socketPath} import --change 'CMD ["/none"]' - bench-empty:0`])
    const volume = `bench-${randomUUID().slice(0, 8)}`
    await engine.docker('volume', 'create', volume)
    const holder = (await engine.docker('create', '--name', 'bench-holder', '--network', 'none', '-v', `${volume}:/srv`, 'bench-empty:0')).stdout.trim()
    const mountpoint = (await engine.docker('volume', 'inspect', '--format', '{{.Mountpoint}}', volume)).stdout.trim()
    const path = join(mountpoint, FILE)
    await execa('bash', ['-c', `head -c ${SIZE_MIB * MiB} /dev/urandom > ${path}`])
    const client = new DockerEngine({
      host: tls.host, port: tls.port, ca: await readFile(tls.ca), cert: await readFile(tls.cert), key: await readFile(tls.key), callTimeoutMs: 60_000
    })
    const dataDir = new DataDir(join(mountpoint, '..', '..', '..', '..', 'bench-service'))
    const workspace = new VolumeWorkspace({ engine: client, dataDir, owner: 'bench' })

    const archivePath = `/containers/${holder}/archive?path=/srv/${FILE}`
    const curlArchive = async (args: string[]) => {
      const { stdout } = await execa('curl', ['-sSf', '-o', '/dev/null', '-w', '%{size_download}', ...args])
      if (Number(stdout) < SIZE_MIB * MiB) throw new Error(`curl: ${stdout} bytes`)
      return expected!
    }
    const upload = await uploadTarget(cleanup, engine, path)
    // Set by openssl's first (warming) run; the variants that do not hash pass it on.
    let expected: string | undefined
    const variants: Record<string, () => Promise<string>> = {
      pull: async () => {
        const [file] = await workspace.pull({ stream: 's', jobId: holder, paths: [FILE] })
        await rm(join(dataDir.workdir('s'), FILE))
        return file!.sha256
      },
      'stream + sha256': async () => {
        const archive = (await client.getArchive(holder, `/srv/${FILE}`, new AbortController().signal))!
        const reader = extract()
        let sha256 = ''
        const done = (async () => {
          for await (const entry of reader) {
            const hash = createHash('sha256')
            for await (const chunk of entry) hash.update(chunk as Buffer)
            sha256 = hash.digest('hex')
          }
        })()
        archive.pipe(reader)
        await done
        return sha256
      },
      drain: async () => {
        const archive = (await client.getArchive(holder, `/srv/${FILE}`, new AbortController().signal))!
        let n = 0
        for await (const chunk of archive) n += (chunk as Buffer).length
        if (n < SIZE_MIB * MiB) throw new Error(`drain: ${n} bytes`)
        return expected!
      },
      'curl TLS': () => curlArchive(['--cacert', tls.ca, '--cert', tls.cert, '--key', tls.key, `https://127.0.0.1:${tls.port}${archivePath}`]),
      'curl unix': () => curlArchive(['--unix-socket', engine.socketPath, `http://engine${archivePath}`]),
      upload: async () => {
        await execa('bash', ['-o', 'pipefail', '-c', `tar -C ${upload.mountpoint} -cf - builds/${COSA_BUILD} | ` +
          `curl -sSf -o /dev/null -T - -H 'Authorization: Bearer ${upload.token}' -H 'Content-Type: application/x-tar' ` +
          `'${upload.url}?cosaBuild=${COSA_BUILD}'`])
        // The file it wrote is checked once, after the rounds, outside the timing.
        return expected!
      },
      openssl: async () => (await execa('openssl', ['dgst', '-sha256', '-r', path])).stdout.split(' ')[0]!
    }
    expected = await variants.openssl!()
    // BENCH_VARIANTS: a comma-separated subset (openssl, the baseline, always runs).
    const only = process.env.BENCH_VARIANTS?.split(',')
    const names = Object.keys(variants).filter((n) => !only || n === 'openssl' || only.includes(n))
    const times = new Map<string, number[]>(names.map((n) => [n, []]))
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(round + i) % names.length]!
        const { seconds, sha256 } = await timed(variants[name]!)
        if (sha256 !== expected) throw new Error(`${name}: sha256 ${sha256}, expected ${expected}`)
        times.get(name)!.push(seconds)
        console.error(`round ${round + 1} ${name}: ${fmt(seconds, 2)} s`)
      }
    }
    const received = (await execa('openssl', ['dgst', '-sha256', '-r', upload.received])).stdout.split(' ')[0]
    if (received !== expected) throw new Error(`upload: the service wrote sha256 ${received}, expected ${expected}`)
    const baseline = median(times.get('openssl')!)
    console.log(`${SIZE_MIB} MiB, ${ROUNDS} rounds, medians (sha256 ${expected!.slice(0, 12)}… agreed in every run):`)
    console.log('| variant | seconds | MiB/s | × openssl |')
    console.log('|---|---:|---:|---:|')
    for (const name of names) {
      const s = median(times.get(name)!)
      console.log(`| ${name} | ${fmt(s, 2)} | ${fmt(SIZE_MIB / s)} | ${fmt(s / baseline, 2)} |`)
    }
    await rm(dataDir.root, { recursive: true, force: true })
  } finally {
    await cleanup.run()
  }
}

await main()
