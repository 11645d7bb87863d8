import { execa } from 'execa'
import { createHash } from 'node:crypto'
import { chown, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ROOT, configRepo, instanceOwner, reapOwned, requireDocker, tempDir } from '../helpers.js'
import { sleep, until } from '../server-process.js'

// The service image from the real Dockerfile, built with no registry and no
// network in the build (scripts/build-service-image.sh), run the way
// deploy/README.md says: Docker socket, the data directory at the same path
// inside and out, tokens, --init; as root for cosa-lite (which builds as
// root), as the image's own user for a builder that builds as uid 1000. A build runs in a sibling
// container on the same engine and reports over the mounted Unix socket;
// after a restart of the service container the build and its artifacts
// are still there.

const TAG = 'cosa-buildd:test-deploy'
const TOKENS = { admin: 'admin-token-for-the-image-test', submit: 'submit-token-for-the-image-test', read: 'read-token-for-the-image-test' }

const freePort = () => new Promise<number>((resolve, reject) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number }
    server.close(() => resolve(port))
  }).once('error', reject)
})

/**
 * deploy/README.md publishes the port on loopback (-p 127.0.0.1:PORT:8080).
 * An engine without a bridge network (CI's dockerd runs --bridge=none) cannot
 * publish ports: there the container shares the host's network and listens
 * on loopback itself.
 */
async function networkArgs (port: number) {
  const bridge = await execa('docker', ['network', 'inspect', 'bridge'], { reject: false })
  return bridge.exitCode === 0
    ? ['-p', `127.0.0.1:${port}:8080`]
    : ['--network', 'host', '-e', 'COSA_BUILDD_HOST=127.0.0.1', '-e', `COSA_BUILDD_PORT=${port}`]
}

const sha256 = (bytes: ArrayBuffer) => createHash('sha256').update(Buffer.from(bytes)).digest('hex')

/** The API on the published port, with a bearer token. */
function client (port: number) {
  const call = async (path: string, token: string, init: { method?: string, body?: unknown } = {}) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${token}`, ...(init.body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) })
    })
    return { status: res.status, bytes: await res.arrayBuffer() }
  }
  const ready = () => until('the service to be ready', 60_000, async () =>
    (await call('/readyz', TOKENS.read).catch(() => ({ status: 0 }))).status === 200)
  return { call, ready }
}

const json = (r: { bytes: ArrayBuffer }) => JSON.parse(Buffer.from(r.bytes).toString('utf8'))

/** Builds the image and checks what it is made of; false when it did not build. */
async function buildImage (t: Test) {
  const started = Date.now()
  const built = await execa('bash', [join(ROOT, 'scripts/build-service-image.sh'), TAG], { all: true, reject: false })
  t.equal(built.exitCode, 0, `the image builds:\n${built.all?.slice(-3000)}`)
  if (built.exitCode !== 0) return false
  const inspect = JSON.parse((await execa('docker', ['image', 'inspect', TAG])).stdout)[0]
  t.comment(`image ${TAG}: ${(inspect.Size / 1e6).toFixed(0)} MB, built in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  t.equal(inspect.Config.User, 'node', 'the image runs as the node user')
  t.ok(inspect.Config.Healthcheck?.Test?.join(' ').includes('/healthz'), 'the image checks /healthz')
  const tools = await execa('docker', ['run', '--rm', '--entrypoint', 'sh', TAG, '-c',
    'command -v g++ cc make python3 npm || true'])
  t.equal(tools.stdout, '', 'no build toolchain or npm in the final stage')
  return true
}

/** `docker run` as deploy/README.md says; returns the container's name and a reader of its log. */
async function runService (t: Test, dataDir: string, repoDir: string, port: number, asRoot: boolean) {
  const name = `cosa-buildd-test-deploy-${process.pid}-${port}`
  const socketGid = (await execa('stat', ['-c', '%g', '/var/run/docker.sock'])).stdout.trim()
  // Teardowns run last-registered first: the service container goes before its builds'.
  reapOwned(t, instanceOwner(dataDir))
  t.teardown(() => execa('docker', ['rm', '-f', name], { reject: false }))
  await execa('docker', ['run', '-d', '--name', name, '--init', '--stop-timeout', '40', ...(asRoot ? ['--user', '0'] : []),
    '--group-add', socketGid,
    ...await networkArgs(port),
    '-v', '/var/run/docker.sock:/var/run/docker.sock',
    '-v', `${dataDir}:${dataDir}`, '-e', `COSA_BUILDD_DATA_DIR=${dataDir}`,
    '-e', `COSA_BUILDD_ADMIN_TOKENS=${TOKENS.admin}`, '-e', `COSA_BUILDD_SUBMIT_TOKENS=${TOKENS.submit}`,
    '-e', `COSA_BUILDD_READ_TOKENS=${TOKENS.read}`,
    // The example's config repository is a local one: mounted read-only, and file:// allowed.
    '-v', `${repoDir}:${repoDir}:ro`, '-e', 'COSA_BUILDD_ALLOW_FILE_URLS=1', '-e', 'COSA_BUILDD_MIN_FREE_BYTES=0',
    TAG])
  const logs = async () => (await execa('docker', ['logs', name], { all: true, reject: false })).all ?? ''
  return { name, logs }
}

t.test('the service image builds offline, runs a build, and keeps it across a restart', async (t) => {
  if (!await requireDocker(t) || !await buildImage(t)) return
  const dataDir = await tempDir(t, 'cbd-image-')
  const repo = await configRepo(t)
  const port = await freePort()
  // cosa-lite builds as root: the service then runs as root too (deploy/README.md).
  const { name, logs } = await runService(t, dataDir, repo.dir, port, true)
  const { call, ready } = client(port)
  await ready().catch(async (err) => { throw new Error(`${err.message}\n${await logs()}`) })

  const reg = await call('/v1/streams/minimal', TOKENS.admin, {
    method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, image: 'cosa-lite:latest', platforms: ['qemu'] }
  })
  t.ok(reg.status < 300, `the example stream registers (${reg.status} ${Buffer.from(reg.bytes).toString()})`)
  const submitted = await call('/v1/streams/minimal/builds', TOKENS.submit, { method: 'POST', body: {} })
  t.equal(submitted.status, 202, 'a build is accepted')
  const id = json(submitted).id as string
  const build = await until('the build to finish', 10 * 60_000, async () => {
    const b = json(await call(`/v1/builds/${id}`, TOKENS.read))
    return ['succeeded', 'unchanged', 'failed', 'cancelled'].includes(b.state) && b
  })
  t.equal(build.state, 'succeeded', `the build succeeds: ${build.message ?? ''}\n${build.state === 'succeeded' ? '' : await logs()}`)
  const qemu = await call(`/v1/builds/${id}/artifacts/qemu`, TOKENS.read)
  t.equal(qemu.status, 200, 'the qemu artifact downloads')

  const health = await until('Docker to call the container healthy', 120_000, async () =>
    (await execa('docker', ['inspect', '-f', '{{.State.Health.Status}}', name])).stdout === 'healthy')
  t.ok(health, 'HEALTHCHECK passes')

  await execa('docker', ['restart', name])
  await sleep(500)
  await ready()
  const after = json(await call(`/v1/builds/${id}`, TOKENS.read))
  t.equal(after.state, 'succeeded', 'the build is still there after a restart')
  const again = await call(`/v1/builds/${id}/artifacts/qemu`, TOKENS.read)
  t.equal(again.status, 200, 'its artifact too')
  t.equal(sha256(again.bytes), sha256(qemu.bytes), 'with the same bytes')
})

// Real cosa builds as uid 1000 (`builder`), the image's own user: the service
// runs as `node`, with the Docker socket's group alone.
const BUILDER_UID_1000 = 'cosa-buildd-test-builder-uid1000:0'

t.test('not root: the service as node runs a build of an image that builds as uid 1000', async (t) => {
  if (!await requireDocker(t) || !await buildImage(t)) return
  const context = await tempDir(t, 'cbd-builder-')
  await writeFile(join(context, 'Dockerfile'), 'FROM cosa-lite:latest\nRUN useradd --uid 1000 --create-home builder\nUSER builder\n')
  await execa('docker', ['build', '-q', '--network=none', '-t', BUILDER_UID_1000, context])
  // What deploy/README.md says: the data directory belongs to uid 1000.
  const dataDir = await tempDir(t, 'cbd-image-')
  await chown(dataDir, 1000, 1000)
  const repo = await configRepo(t)
  // git refuses a repository another user owns ("dubious ownership").
  await execa('chown', ['-R', '1000:1000', repo.dir])
  const port = await freePort()
  const { name, logs } = await runService(t, dataDir, repo.dir, port, false)
  const { call, ready } = client(port)
  await ready().catch(async (err) => { throw new Error(`${err.message}\n${await logs()}`) })
  t.equal((await execa('docker', ['exec', name, 'id', '-u'])).stdout, '1000', 'the service runs as uid 1000')
  const reg = await call('/v1/streams/minimal', TOKENS.admin, {
    method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, image: BUILDER_UID_1000, platforms: ['qemu'] }
  })
  t.ok(reg.status < 300, `the stream registers (${reg.status})`)
  const id = json(await call('/v1/streams/minimal/builds', TOKENS.submit, { method: 'POST', body: {} })).id as string
  const build = await until('the build to finish', 10 * 60_000, async () => {
    const b = json(await call(`/v1/builds/${id}`, TOKENS.read))
    return ['succeeded', 'unchanged', 'failed', 'cancelled'].includes(b.state) && b
  })
  t.equal(build.state, 'succeeded', `the build succeeds: ${build.message ?? ''}`)
  t.equal((await call(`/v1/builds/${id}/artifacts/qemu`, TOKENS.read)).status, 200, 'its artifact downloads')
})
