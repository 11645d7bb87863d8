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
//  - openssl: `openssl dgst -sha256` of the file where the engine keeps it
//    (the volume's directory), read from the same page cache.
// The engine is a dockerd of the bench's own (test/engine.ts: its own data
// root, a Unix socket and a TLS listener on 127.0.0.1, certificates made by
// openssl); the file sits in a named volume mounted by a container that is
// never started. Every variant is measured warm (the file is read once
// before), in rounds whose order rotates; medians are reported.
//   npm run bench bench/remote-transfer.ts
// Environment: BENCH_ROUNDS (3), BENCH_SIZE_MIB (2048).
import { execa } from 'execa'
import { createHash, randomUUID } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { extract } from 'tar-stream'
import { DataDir } from '../src/data-dir.js'
import { DockerEngine } from '../src/executor/docker/docker-engine.js'
import { VolumeWorkspace } from '../src/executor/docker/volume-workspace.js'
import { startEngine } from '../test/engine.js'
import { fmt, median } from './lib.js'

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

async function main () {
  const cleanup = teardowns()
  try {
    const engine = await startEngine(cleanup.t, { tls: true, images: [] })
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
      openssl: async () => (await execa('openssl', ['dgst', '-sha256', '-r', path])).stdout.split(' ')[0]!
    }
    expected = await variants.openssl!()
    const names = Object.keys(variants)
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
