import { execa } from 'execa'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t, { type Test } from 'tap'
import { WorkdirUploads } from '../../src/builds/workdir-upload.js'
import { EngineError } from '../../src/executor/executor.js'
import { startEngine, type TestEngine } from '../engine.js'
import { IMAGE, configRepo, freePort, register, requireDocker, startApp, submit, tempDir, type TestApp } from '../helpers.js'
import { runnerHarness } from './runner-harness.js'

// A build on a remote engine (a dockerd of the test's own over mutual TLS,
// its workdir a volume there) sends the files of the build it made to the
// API itself when its network reaches builds.resultUrl (here: the host's
// network, the API on 127.0.0.1); without a network the service copies them
// back through the engine as before. Both publish the same kind of build,
// checked with sha256sum and qemu-img. The route itself refuses what is not
// the running build's own upload.

t.setTimeout(15 * 60_000)

const FINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']

async function sha256 (path: string) {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

async function logOf (h: TestApp, id: string) {
  return (await h.app.inject({ url: `/v1/builds/${id}/log` })).body
}

/** The API listening on 127.0.0.1 (builds.resultUrl), a remote engine and, with `local`, the shared one too. */
async function start (t: Test, local = false): Promise<{ h: TestApp, remote: TestEngine, url: string } | undefined> {
  if (!await requireDocker(t)) return undefined
  const remote = await startEngine(t, { tls: true, images: [IMAGE] })
  const { port: enginePort, ca, cert, key } = remote.tls!
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const h = await startApp(t, {
    engines: [
      ...local ? [{ name: 'local', host: 'unix:///var/run/docker.sock' }] : [],
      { name: 'remote', host: `tcp://127.0.0.1:${enginePort}`, tls: { ca, cert, key } }
    ],
    builds: { resultUrl: url, maxConcurrent: 2 }
  })
  await h.app.listen({ host: '127.0.0.1', port })
  return { h, remote, url }
}

/** Checks a published build's qemu image with independent tools; its sha256 as meta.json says. */
async function checkPublished (t: Test, h: TestApp, build: any) {
  const qemu = build.result.artifacts.find((a: any) => a.name === 'qemu')
  t.ok(qemu, 'a qemu artifact')
  const meta = (await h.app.inject({ url: `/v1/builds/${build.id}/meta.json` })).json()
  t.equal(await sha256(qemu.location), meta.images.qemu.sha256, 'the stored qemu image has the sha256 meta.json names (node:crypto)')
  const sum = await execa('sha256sum', [qemu.location])
  t.equal(sum.stdout.split(' ')[0], meta.images.qemu.sha256, 'and sha256sum agrees')
  const check = await execa('qemu-img', ['check', qemu.location], { reject: false, all: true })
  t.equal(check.exitCode, 0, `qemu-img check: ${check.all}`)
}

t.test('a build on a remote engine with a network sends its files itself; without one they are copied back', async (t) => {
  const up = await start(t)
  if (!up) return
  const { h } = up
  const repo = await configRepo(t)
  await register(h, 'net', { config: { url: repo.url, ref: 'main' }, networkMode: 'host' })
  await register(h, 'nonet', { config: { url: repo.url, ref: 'main' } })

  const [sent, copied] = await Promise.all([
    h.waitFor((await submit(h, 'net')).id, FINAL, 10 * 60_000),
    h.waitFor((await submit(h, 'nonet')).id, FINAL, 10 * 60_000)
  ])
  t.equal(sent.state, 'succeeded', sent.message ?? '')
  t.equal(copied.state, 'succeeded', copied.message ?? '')
  t.equal(sent.engine, 'remote')
  t.equal(copied.engine, 'remote')

  const sentLog = await logOf(h, sent.id)
  t.match(sentLog, /==> sending build \S+ to the service/, 'the build sent its files')
  t.match(sentLog, /received \d+ files \(\d+ bytes\) of build \S+ from the build itself \(upload\)/, 'the service took them from the upload')
  t.notMatch(sentLog, /copied \d+ files/, 'and copied nothing back through the engine')
  await checkPublished(t, h, sent)

  const copiedLog = await logOf(h, copied.id)
  t.match(copiedLog, /the service did not take it \(it copies the files through the engine instead\)/, 'no network: the upload failed')
  t.match(copiedLog, /copied \d+ files \(\d+ bytes\) of build \S+ from the engine remote/, 'and the files came through the engine')
  await checkPublished(t, h, copied)

  const again = await h.waitFor((await submit(h, 'net')).id, FINAL, 10 * 60_000)
  t.equal(again.state, 'unchanged', 'the same inputs again: unchanged, as ever')
})

t.test('the upload route takes the running build\'s own files alone', async (t) => {
  const up = await start(t, true)
  if (!up) return
  const { h, remote, url } = up
  // Each build on the engine the test means: the other one is drained meanwhile.
  const drain = async (engine: string, verb: 'drain' | 'undrain') =>
    t.equal((await h.app.inject({ method: 'POST', url: `/v1/engines/${engine}/${verb}` })).statusCode, 200, `${verb} ${engine}`)
  const repo = await configRepo(t)
  // Running, and staying so: a recipe that waits before cosa's steps.
  const waiting = { config: { url: repo.url, ref: 'main' }, recipe: [['shell', '--', 'sleep', '600'], ['build']] }
  await register(h, 'remote-wait', waiting)
  await register(h, 'local-wait', waiting)
  await drain('local', 'drain')
  const onRemote = (await submit(h, 'remote-wait')).id
  t.match(await h.waitFor(onRemote, ['running']), { engine: 'remote' })
  await drain('local', 'undrain')
  await drain('remote', 'drain')
  const onLocal = (await submit(h, 'local-wait')).id
  t.match(await h.waitFor(onLocal, ['running']), { engine: 'local' })
  // The token is in the container's environment alone, as a build's would be.
  const tokenOf = async (docker: (...a: string[]) => Promise<{ stdout: string }>, id: string) => {
    for (let i = 0; i < 100; i++) {
      const env = (await docker('inspect', '--format', '{{json .Config.Env}}', `cosa-buildd-${id}`)).stdout
      const token = /COSA_BUILDD_TOKEN=([^"]+)/.exec(env)?.[1]
      if (token) return token
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    throw new Error(`no container for ${id}`)
  }
  const localDocker = async (...a: string[]) => ({ stdout: String((await execa('docker', a, { reject: false })).stdout) })
  const remoteToken = await tokenOf(remote.docker, onRemote)
  const localToken = await tokenOf(localDocker, onLocal)

  const dir = await tempDir(t, 'cosa-upload-')
  const tarOf = async (name: string, paths: string[], setup: (root: string) => Promise<void>) => {
    const root = join(dir, name)
    await mkdir(root, { recursive: true })
    await setup(root)
    const tar = join(dir, `${name}.tar`)
    await execa('tar', ['-C', root, '-cf', tar, ...paths])
    return readFile(tar)
  }
  // As the recipe makes it: the build's own paths, no builds/ entry of their parent.
  const good = await tarOf('good', ['builds/builds.json', 'builds/42.0'], async (root) => {
    await mkdir(join(root, 'builds/42.0/x86_64'), { recursive: true })
    await writeFile(join(root, 'builds/42.0/x86_64/disk.qcow2'), 'a disk\n')
    await writeFile(join(root, 'builds/builds.json'), '{}\n')
  })
  const outside = await tarOf('outside', ['builds/42.0', 'src'], async (root) => {
    await mkdir(join(root, 'builds/42.0'), { recursive: true })
    await writeFile(join(root, 'builds/42.0/x'), 'x\n')
    await mkdir(join(root, 'src'), { recursive: true })
    await writeFile(join(root, 'src/config.yaml'), 'not the build\'s\n')
  })
  const put = (id: string, body: Buffer | string, headers: Record<string, string>) =>
    fetch(`${url}/v1/builds/${id}/workdir?cosaBuild=42.0`, { method: 'PUT', body, headers })
  const tar = { 'content-type': 'application/x-tar' }
  const as = (token: string) => ({ ...tar, authorization: `Bearer ${token}` })

  t.equal((await put(onRemote, good, tar)).status, 401, 'no token: 401')
  t.equal((await put(onRemote, good, as(localToken))).status, 403, 'another build\'s token: 403')
  const json = await put(onRemote, '{}', { ...as(remoteToken), 'content-type': 'application/json' })
  t.equal(json.status, 415, 'not a tar: 415')
  t.match(((await json.json()) as { message: string }).message, /send application\/x-tar/)
  const refused = await put(onRemote, outside, as(remoteToken))
  t.equal(refused.status, 422, 'an entry outside the build\'s paths refuses the upload')
  t.match(await refused.json(), { code: 'BLD_UPLOAD_REJECTED', message: /archive entry src\/ is outside/ })
  const workdir = join(h.dataDir, 'streams/remote-wait/work')
  t.equal(await stat(join(workdir, 'src/config.yaml')).catch(() => undefined), undefined, 'and nothing of it is outside the build\'s paths')
  // Refused half way through a large upload, sent as a build sends it
  // (tar | curl -T -): curl reads the answer, not a reset connection.
  const bigRoot = join(dir, 'big')
  await mkdir(join(bigRoot, 'src'), { recursive: true })
  await mkdir(join(bigRoot, 'builds/42.0'), { recursive: true })
  await writeFile(join(bigRoot, 'src/config.yaml'), 'not the build\'s\n')
  await execa('truncate', ['-s', '64M', join(bigRoot, 'builds/42.0/disk.raw')])
  await execa('truncate', ['-s', '256M', join(bigRoot, 'src/more.raw')])
  const curlUpload = async (id: string, token: string) => {
    const { stdout } = await execa('bash', ['-c', 'tar -C "$1" -cf - builds/42.0 src | curl -sS -T - -w "\n%{http_code}" ' +
      '-H "content-type: application/x-tar" -H "authorization: Bearer $2" "$3"', '-', bigRoot, token,
    `${url}/v1/builds/${id}/workdir?cosaBuild=42.0`], { reject: false })
    const lines = stdout.trim().split('\n')
    return { status: Number(lines.pop()), body: lines.join('\n') }
  }
  t.match(await curlUpload(onRemote, remoteToken), { status: 422, body: /BLD_UPLOAD_REJECTED/ }, 'a large refused upload gets its 422')
  t.match(await curlUpload(onLocal, localToken), { status: 409, body: /BLD_UPLOAD_NOT_TAKEN/ }, 'and one not taken its 409')
  const onShared = await put(onLocal, good, as(localToken))
  t.equal(onShared.status, 409, 'a build whose engine shares the service\'s disk has nothing to upload')
  t.match(await onShared.json(), { code: 'BLD_UPLOAD_NOT_TAKEN' })
  const taken = await put(onRemote, good, as(remoteToken))
  t.equal(taken.status, 200, 'the running build\'s own upload is taken')
  t.same(await taken.json(), { files: 2, bytes: 10 })
  t.equal(await readFile(join(workdir, 'builds/42.0/x86_64/disk.qcow2'), 'utf8'), 'a disk\n', 'into the service\'s copy of its workdir')

  for (const id of [onRemote, onLocal]) await h.app.inject({ method: 'POST', url: `/v1/builds/${id}/cancel` })
  await h.waitFor(onRemote, ['cancelled'])
  t.equal((await put(onRemote, good, as(remoteToken))).status, 401, 'a finished build\'s token is unknown')
})

t.test('who takes an upload, and for which job end (the rules alone: the engine is the in-memory one)', async (t) => {
  const h = await runnerHarness(t)
  const uploads = new WorkdirUploads({ store: h.store, engines: h.engines, leases: h.lifecycle.leases })
  const archive = () => Readable.from([])
  const claimed = await h.claim()
  await t.rejects(uploads.receive(claimed.id, '1.0', archive()), { code: 'BLD_UPLOAD_NOT_TAKEN', message: /shares the service's disk/ },
    'an engine without a workdir of its own takes none')

  const files = [{ path: 'builds/1.0/x86_64/os.tar', size: 3, sha256: 'a'.repeat(64) }]
  let asked: unknown
  h.fake.receiveBuild = async (input: unknown) => { asked = input; return files }
  t.same(await uploads.receive(claimed.id, '1.0', archive()), { cosaBuildId: '1.0', files })
  t.match(asked, { stream: 's', paths: ['builds/builds.json', 'builds/latest', 'builds/1.0', 'tmp/kola'] }, 'the build\'s own paths alone')
  t.equal(uploads.take(claimed.id, '2.0'), undefined, 'the end of a job that made another build does not take it')
  await uploads.receive(claimed.id, '1.0', archive())
  t.same(uploads.take(claimed.id, '1.0'), files, 'the job\'s end takes what it sent')
  t.equal(uploads.take(claimed.id, '1.0'), undefined, 'once')
  await uploads.receive(claimed.id, '1.0', archive())
  uploads.forget(claimed.id)
  t.equal(uploads.take(claimed.id, '1.0'), undefined, 'a job that failed after its upload leaves nothing to take')

  h.fake.receiveBuild = async () => { throw new EngineError('invalid', 'archive entry src/ is outside builds/1.0') }
  await t.rejects(uploads.receive(claimed.id, '1.0', archive()), { code: 'BLD_UPLOAD_REJECTED', message: /src\/ is outside/ })

  h.lifecycle.leases.forget(claimed.id)
  await t.rejects(uploads.receive(claimed.id, '1.0', archive()), { code: 'BLD_UPLOAD_NOT_TAKEN', message: /does not supervise/ },
    'a replica that does not supervise the build takes none: the files are for the supervisor\'s disk')
  await t.rejects(uploads.receive('nope', '1.0', archive()), { code: 'BLD_BUILD_NOT_FOUND' })
  await h.lifecycle.submit({ id: 'queued-1', stream: 't', request: { force: false, skipPrune: false }, createdAt: new Date().toISOString() })
  await t.rejects(uploads.receive('queued-1', '1.0', archive()), { code: 'BLD_BUILD_NOT_RUNNING' })
})
