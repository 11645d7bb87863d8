import { execa, type ResultPromise } from 'execa'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Test } from 'tap'
import { IMAGE } from './helpers.js'

// A Docker engine of the test's own, so that it can be stopped and started
// without touching the engine every other test uses. It shares no network
// with anything (--bridge=none) and holds a copy of the builder image.

export interface TestEngine {
  socketPath: string
  running: () => boolean
  stop: () => Promise<void>
  start: () => Promise<void>
  docker: (...args: string[]) => Promise<{ exitCode?: number | undefined, stdout: string, stderr: string }>
}

export async function startEngine (t: Test, opts: { liveRestore?: boolean } = {}): Promise<TestEngine> {
  // Short: the socket path must fit in sun_path.
  const dir = await mkdtemp('/tmp/cbe-')
  const socketPath = join(dir, 'docker.sock')
  let child: ResultPromise | undefined
  const docker = async (...args: string[]) => {
    const r = await execa('docker', ['-H', `unix://${socketPath}`, ...args], { reject: false })
    return { exitCode: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) }
  }
  const start = async () => {
    child = execa('dockerd', [
      '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'pid'),
      '-H', `unix://${socketPath}`, '--bridge=none', '--iptables=false', '--ip6tables=false',
      ...(opts.liveRestore ? ['--live-restore'] : [])
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
    // dockerd bind-mounts its data root onto itself and leaves it mounted.
    await execa('umount', ['-l', join(dir, 'data')], { reject: false })
    await rm(dir, { recursive: true, force: true })
  })
  const load = await execa('bash', ['-o', 'pipefail', '-c', `docker save ${IMAGE} | docker -H unix://${socketPath} load`], { reject: false })
  if (load.exitCode !== 0) throw new Error(`loading ${IMAGE} into the test engine: ${load.stderr}`)
  return { socketPath, running: () => child !== undefined && child.exitCode === null, stop, start, docker }
}
