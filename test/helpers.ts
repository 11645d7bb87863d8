import { pino } from 'pino'
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify'
import { execa } from 'execa'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import app from '../src/app.js'
import { serverOptions } from '../src/server.js'
import { loadConfig } from '../src/config.js'
import type { CoreOptions } from '../src/core.js'

/** For services under test whose log lines nobody reads. */
export const silentLogger = pino({ level: 'silent' })

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')

/** A TCP port on 127.0.0.1 that was free a moment ago, for a server of a test's own. */
export async function freePort () {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}
export const IMAGE = process.env.COSA_LITE_IMAGE ?? 'cosa-lite:latest'

export async function tempDir (t: Test, prefix = 'cosa-buildd-test-') {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  // Build outputs are written by root in containers; rm as the same user.
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const git = (cwd: string, ...args: string[]) =>
  execa('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.invalid', ...args], { cwd })

/** A git repository holding a copy of examples/<name>, with helpers to change it. */
export async function configRepo (t: Test, name = 'minimal') {
  const dir = join(await tempDir(t, 'cosa-config-'), name)
  await cp(join(ROOT, 'examples', name), dir, { recursive: true })
  await git(dir, 'init', '--quiet', '--initial-branch=main')
  await git(dir, 'add', '-A')
  await git(dir, 'commit', '--quiet', '-m', 'initial')
  return {
    dir,
    url: `file://${dir}`,
    head: async () => (await git(dir, 'rev-parse', 'HEAD')).stdout.trim(),
    /** Writes a file and commits it; returns the new commit. */
    commit: async (path: string, content: string) => {
      await writeFile(join(dir, path), content)
      await git(dir, 'add', '-A')
      await git(dir, 'commit', '--quiet', '-m', `change ${path}`)
      return (await git(dir, 'rev-parse', 'HEAD')).stdout.trim()
    }
  }
}

export async function requireDocker (t: Test) {
  const { exitCode } = await execa('docker', ['image', 'inspect', IMAGE], { reject: false })
  if (exitCode !== 0) {
    t.fail(`the Docker engine or ${IMAGE} is missing: run .ci/run, or npm run image:cosa-lite with dockerd running`)
    return false
  }
  return true
}

export interface CosaOptions {
  network?: 'none' | 'host'
  /** Capabilities added after dropping all (the service's unprivileged set, say). */
  caps?: string[]
}

/** Runs cosa-lite on a workdir, as a build service would: no network, no privileges unless asked. */
export function cosaWith (opts: CosaOptions, workdir: string, configDir: string, ...args: string[]) {
  return execa('docker', ['run', '--rm', `--network=${opts.network ?? 'none'}`, '--cap-drop=ALL',
    ...(opts.caps ?? []).map((c) => `--cap-add=${c}`), '--security-opt=no-new-privileges',
    '-v', `${workdir}:/srv`, '-v', `${configDir}:${configDir}:ro`, IMAGE, ...args], { reject: false, all: true })
}

export const cosa = (workdir: string, configDir: string, ...args: string[]) => cosaWith({}, workdir, configDir, ...args)

export interface TestApp {
  app: FastifyInstance
  dataDir: string
  /** Polls a build until it is in one of `states`. */
  waitFor: (id: string, states: string[], timeoutMs?: number) => Promise<any>
}

export async function startApp (t: Test, overrides: Record<string, unknown> = {}, core: Partial<CoreOptions> = {}): Promise<TestApp> {
  const dataDir = (overrides.dataDir as string | undefined) ?? await tempDir(t, 'cosa-buildd-data-')
  const config = loadConfig({}, { dataDir, allowFileUrls: true, logLevel: 'silent', ...overrides })
  const fastify = Fastify({ logger: false, ...serverOptions(config) })
  await fastify.register(app, { config, reconcileIntervalMs: 1000, ...core })
  let closed = false
  fastify.addHook('onClose', async () => { closed = true })
  await fastify.ready()
  const waitFor = async (id: string, states: string[], timeoutMs = 120_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const res = await fastify.inject({ method: 'GET', url: `/v1/builds/${id}` })
      const build = res.json()
      if (states.includes(build.state)) return build
      if (Date.now() > deadline) throw new Error(`build ${id} is ${build.state} after ${timeoutMs} ms, not ${states.join('/')}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  t.teardown(async () => {
    if (closed) return
    // Leave no container behind: cancel what still runs, then close.
    const { builds } = (await fastify.inject({ method: 'GET', url: '/v1/builds?limit=500' })).json()
    for (const b of builds ?? []) {
      if (b.state === 'queued' || b.state === 'running') {
        await fastify.inject({ method: 'POST', url: `/v1/builds/${b.id}/cancel` })
        await waitFor(b.id, ['cancelled', 'failed', 'succeeded', 'unchanged'], 60_000).catch(() => undefined)
      }
    }
    await fastify.close()
  })
  return { app: fastify, dataDir, waitFor }
}

export async function register (h: TestApp, name: string, body: Record<string, unknown>) {
  const res = await h.app.inject({ method: 'PUT', url: `/v1/streams/${name}`, payload: body })
  if (res.statusCode >= 300) throw new Error(`register ${name}: ${res.statusCode} ${res.body}`)
  return res.json()
}

export async function submit (h: TestApp, stream: string, body: Record<string, unknown> = {}) {
  const res = await h.app.inject({ method: 'POST', url: `/v1/streams/${stream}/builds`, payload: body })
  if (res.statusCode !== 202) throw new Error(`submit: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** Submits a build and waits until it has finished. */
export async function buildOnce (h: TestApp, stream: string, body: Record<string, unknown> = {}) {
  const build = await submit(h, stream, body)
  return h.waitFor(build.id, ['succeeded', 'unchanged', 'failed', 'cancelled'])
}

/**
 * On the engine (registration checks that a stream's image is), for streams
 * whose builds never reach a container: their config repository does not exist.
 */
export const INERT_IMAGE = 'cosa-buildd-test-inert:0'

export async function ensureInertImage () {
  await execa('docker', ['tag', IMAGE, INERT_IMAGE])
}

/** A tag that exists while a stream registers, then goes: its builds fail `image_unavailable`. */
export async function vanishingImage (t: Test, name: string) {
  const tag = `cosa-buildd-test-vanishing-${name}:0`
  await execa('docker', ['tag', IMAGE, tag])
  t.teardown(() => execa('docker', ['rmi', tag], { reject: false }))
  return { tag, vanish: () => execa('docker', ['rmi', tag]) }
}

/**
 * The app with every route it registers collected on the way (an onRoute
 * hook added first), for tests that go over all routes. Builds never start
 * a container: the default image does not exist.
 */
export async function startCollecting (t: Test, overrides: Record<string, unknown> = {}, background = true) {
  const dataDir = await tempDir(t, 'cosa-buildd-data-')
  const config = loadConfig({}, {
    dataDir,
    allowFileUrls: true,
    logLevel: 'silent',
    storage: { minFreeBytes: 0 },
    builds: { maxConcurrent: 1, defaultImage: INERT_IMAGE },
    ...overrides
  })
  const fastify = Fastify({ logger: false, ...serverOptions(config) })
  const routes: RouteOptions[] = []
  fastify.addHook('onRoute', (route) => { routes.push(route) })
  await fastify.register(app, { config, reconcileIntervalMs: 1000, background })
  await fastify.ready()
  t.teardown(() => fastify.close())
  return { app: fastify, routes }
}

/**
 * At teardown, removes every container and volume labelled as `owner`'s,
 * whatever the test left: an owner id, or a function that finds it then.
 */
export function reapOwned (t: Test, owner: string | (() => Promise<string>)) {
  t.teardown(async () => {
    const id = typeof owner === 'string' ? owner : await owner().catch(() => '')
    if (!id) return
    const filter = ['--filter', `label=io.cosa-buildd.owner=${id}`]
    const listed = async (...argv: string[]) => (await execa('docker', [...argv, '-q', ...filter], { reject: false })).stdout.split('\n').filter(Boolean)
    const containers = await listed('ps', '-a')
    if (containers.length) await execa('docker', ['rm', '-f', ...containers], { reject: false })
    const volumes = await listed('volume', 'ls')
    if (volumes.length) await execa('docker', ['volume', 'rm', '-f', ...volumes], { reject: false })
  })
}

/** The owner id of a server's data directory (its instance id), read when asked. */
export const instanceOwner = (dataDir: string) => async () => (await readFile(join(dataDir, 'instance-id'), 'utf8')).trim()
