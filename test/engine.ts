import { execa, type ResultPromise } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { freePort, IMAGE } from './helpers.js'

// A Docker engine of the test's own, so that it can be stopped and started
// without touching the engine every other test uses. It shares no network
// with anything (--bridge=none) and holds a copy of the builder image. With
// `tls`, it also listens on 127.0.0.1 over TCP with mutual TLS, as a remote
// build host does, with certificates made here by openssl.

/** The files a client of a TLS engine needs (PEM paths), and where it listens. */
export interface EngineTls {
  host: string
  port: number
  ca: string
  cert: string
  key: string
}

export interface TestEngine {
  socketPath: string
  running: () => boolean
  stop: () => Promise<void>
  start: () => Promise<void>
  docker: (...args: string[]) => Promise<{ exitCode?: number | undefined, stdout: string, stderr: string }>
  tls?: EngineTls | undefined
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`. */
export async function makeCertificates (dir: string) {
  const sh = (script: string) => execa('bash', ['-euo', 'pipefail', '-c', script], { cwd: dir })
  await sh(`
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca-key.pem -out ca.pem 2>/dev/null
    for who in server client; do
      openssl req -newkey rsa:2048 -nodes -subj /CN=$who -keyout $who-key.pem -out $who.csr 2>/dev/null
    done
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    for who in server client; do
      openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile $who.ext -out $who.pem 2>/dev/null
    done`)
  return { ca: join(dir, 'ca.pem'), serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server-key.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client-key.pem') }
}

export async function startEngine (t: Test, opts: { liveRestore?: boolean, tls?: boolean, images?: string[] } = {}): Promise<TestEngine> {
  // Short: the socket path must fit in sun_path.
  const dir = await mkdtemp('/tmp/cbe-')
  const socketPath = join(dir, 'docker.sock')
  let tls: EngineTls | undefined
  let tlsArgs: string[] = []
  if (opts.tls) {
    const certs = await makeCertificates(dir)
    tls = { host: '127.0.0.1', port: await freePort(), ca: certs.ca, cert: certs.cert, key: certs.key }
    tlsArgs = ['-H', `tcp://127.0.0.1:${tls.port}`, '--tlsverify', '--tlscacert', certs.ca, '--tlscert', certs.serverCert, '--tlskey', certs.serverKey]
  }
  let child: ResultPromise | undefined
  const docker = async (...args: string[]) => {
    const r = await execa('docker', ['-H', `unix://${socketPath}`, ...args], { reject: false })
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) }
  }
  const start = async () => {
    child = execa('dockerd', [
      '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'),
      '-H', `unix://${socketPath}`, '--bridge=none', '--iptables=false', '--ip6tables=false',
      ...tlsArgs, ...(opts.liveRestore ? ['--live-restore'] : [])
    ], { reject: false, stdout: 'ignore', stderr: 'ignore' })
    for (let i = 0; i < 100; i++) {
      if ((await docker('version', '--format', '{{.Server.Version}}')).exitCode === 0) return
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    throw new Error('the test Docker engine did not start')
  }
  const stop = async () => {
    if (!child || child.exitCode !== null) return
    child.kill('SIGTERM')
    await child
    child = undefined
  }
  await start()
  t.teardown(async () => {
    if (!child) await start().catch(() => undefined)
    if (child) {
      const { stdout } = await docker('ps', '-aq')
      if (stdout.trim()) await docker('rm', '-f', ...stdout.trim().split('\n'))
    }
    await stop()
    // dockerd bind-mounts its data root onto itself and leaves it mounted,
    // and the host network's namespace (a container on `--network host`) too.
    await execa('umount', ['-l', join(dir, 'data')], { reject: false })
    await execa('umount', ['-l', join(dir, 'exec', 'netns', 'default')], { reject: false })
    await rm(dir, { recursive: true, force: true })
  })
  const images = opts.images ?? [IMAGE]
  const load = images.length === 0
    ? { exitCode: 0, stderr: '' }
    : await execa('bash', ['-o', 'pipefail', '-c', `docker save ${images.join(' ')} | docker -H unix://${socketPath} load`], { reject: false })
  if (load.exitCode !== 0) throw new Error(`loading ${images.join(', ')} into the test engine: ${load.stderr}`)
  return { socketPath, running: () => child !== undefined && child.exitCode === null, stop, start, docker, tls }
}
