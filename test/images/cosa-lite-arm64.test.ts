import { execa } from 'execa'
import { createServer, type IncomingMessage } from 'node:http'
import { readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { metaProblems } from '../../src/cosa/meta.js'
import { DEFAULT_RECIPE, renderScript } from '../../src/cosa/recipe.js'
import { API_SOCKET_NAME, MOUNTS, UNPRIVILEGED_CAPS } from '../../src/executor/docker/container-spec.js'
import { ROOT, configRepo, tempDir } from '../helpers.js'

// cosa-lite for arm64 on this (x86_64) engine, under qemu-user emulation: the
// image is built (or found by its hash tag) as CI builds it, then the
// service's own build script for the minimal example runs in an arm64
// container held like a build, and what it reports and leaves is checked with
// the host's tools. The times are printed: emulation is the cost here.

t.setTimeout(40 * 60_000)

const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(1)

/** The arm64 image, by its hash tag: a no-op when CI built it already. */
async function arm64Image (t: Test) {
  const emulation = await execa('arch-test', ['arm64'], { reject: false, all: true })
  if (emulation.exitCode !== 0) {
    t.fail(`this host cannot run arm64 binaries (${emulation.all}): run scripts/setup-host.sh as root`)
    return undefined
  }
  const started = performance.now()
  const r = await execa('bash', [join(ROOT, 'images/cosa-lite/build.sh'), '--arch', 'arm64'], { reject: false, all: true })
  if (r.exitCode !== 0) {
    t.fail(`images/cosa-lite/build.sh --arch arm64 exited ${r.exitCode}: ${r.all}`)
    return undefined
  }
  const tag = r.stdout.trim().split(/\s+/)[0]!
  t.comment(`${r.stdout.trim()} in ${seconds(started)} s`)
  return tag
}

interface Report { url: string, authorization: string | undefined, body: string }

/** The service's result endpoint, on a Unix socket as the local engine gets it. */
async function resultSocket (t: Test, dir: string) {
  const reports: Report[] = []
  const body = async (req: IncomingMessage) => {
    let text = ''
    for await (const chunk of req) text += String(chunk)
    return text
  }
  const server = createServer((req, res) => {
    body(req).then((text) => {
      reports.push({ url: req.url ?? '', authorization: req.headers.authorization, body: text })
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    }, () => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(join(dir, API_SOCKET_NAME), resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  return reports
}

/** Runs bash in the image as the service runs a build: no network, the unprivileged profile. */
function inBuildContainer (image: string, mounts: { work: string, config: string, api: string }, script: string) {
  return execa('docker', ['run', '--rm', '--network=none', '--cap-drop=ALL',
    ...UNPRIVILEGED_CAPS.map((c) => `--cap-add=${c}`), '--security-opt=no-new-privileges',
    '--tmpfs=/tmp:rw,exec,nosuid,nodev,size=2g',
    '-v', `${mounts.work}:${MOUNTS.workdir}`, '-v', `${mounts.config}:${MOUNTS.config}:ro`, '-v', `${mounts.api}:${MOUNTS.api}`,
    '-e', 'COSA_BUILDD_RESULT_URL=http://localhost/v1/builds/arm64/result',
    '-e', `COSA_BUILDD_RESULT_SOCKET=${MOUNTS.api}/${API_SOCKET_NAME}`, '-e', 'COSA_BUILDD_TOKEN=arm64-token',
    image, 'shell', '--', 'bash', '-c', script], { reject: false, all: true })
}

const readJson = async (path: string) => JSON.parse(await readFile(path, 'utf8'))

t.test('cosa-lite for arm64', async (t) => {
  const image = await arm64Image(t)
  if (!image) return
  const inspect = JSON.parse((await execa('docker', ['image', 'inspect', image])).stdout)[0]
  t.equal(inspect.Architecture, 'arm64', 'the image says it is arm64')
  t.match(image, /^cosa-lite:[0-9a-f]{16}-arm64$/, 'tagged <hash>-arm64')
  const latest = JSON.parse((await execa('docker', ['image', 'inspect', 'cosa-lite:latest-arm64'])).stdout)[0]
  t.equal(latest.Id, inspect.Id, 'cosa-lite:latest-arm64 is the same image')
  const byEnv = await execa('bash', [join(ROOT, 'images/cosa-lite/build.sh')], { env: { COSA_LITE_ARCH: 'aarch64' }, reject: false, all: true })
  t.equal(byEnv.stdout.trim(), `${image} (up to date)`, `COSA_LITE_ARCH (cosa's name accepted too) is the same image: ${byEnv.all}`)
  const uname = await execa('docker', ['run', '--rm', '--network=none', image, 'shell', '--', 'uname', '-m'], { reject: false, all: true })
  t.equal(uname.stdout.trim(), 'aarch64', `uname -m in the container: ${uname.all}`)

  // The example's ref names `${basearch}`: one config for every arch, as rpm-ostree allows.
  const repo = await configRepo(t)
  const work = await tempDir(t, 'cosa-arm64-work-')
  const api = await tempDir(t, 'cosa-arm64-api-')
  const reports = await resultSocket(t, api)
  const script = renderScript({
    recipe: DEFAULT_RECIPE,
    url: `file://${MOUNTS.config}`,
    ref: 'main',
    commit: await repo.head(),
    request: { force: false, skipPrune: false },
    platforms: ['qemu'],
    bootTest: ['kola', 'run', 'basic']
  })
  const started = performance.now()
  const run = await inBuildContainer(image, { work, config: repo.dir, api }, script)
  t.comment(`the minimal example's build (init, fetch, build, osbuild qemu, kola) under arm64 emulation: ${seconds(started)} s`)
  t.equal(run.exitCode, 0, `the build script exits 0: ${run.all}`)
  const id = await readlink(join(work, 'builds/latest'))
  const dir = join(work, 'builds', id, 'aarch64')

  await t.test('the report and meta.json are cosa\'s, for aarch64', async (t) => {
    t.equal(reports.length, 1, 'one result posted')
    const report = reports[0]!
    t.equal(report.url, '/v1/builds/arm64/result?outcome=built&arch=aarch64', 'a new build, reported for aarch64')
    t.equal(report.authorization, 'Bearer arm64-token', 'with the build\'s token')
    const meta = JSON.parse(report.body)
    t.same(metaProblems(meta), [], 'valid against cosa\'s schema')
    t.equal(meta['coreos-assembler.basearch'], 'aarch64', 'basearch aarch64')
    t.equal(meta.ref, 'cosa-lite/aarch64/minimal', 'the ref names the arch (rpm-ostree\'s basearch variable)')
    t.same(meta, await readJson(join(dir, 'meta.json')), 'the posted meta.json is the one on disk')
    t.equal(meta.images.qemu.path, `minimal-${id}-qemu.aarch64.qcow2`, 'the disk is named for aarch64')
    t.same((await readJson(join(work, 'builds/builds.json'))).builds, [{ id, arches: ['aarch64'] }], 'builds.json lists the aarch64 build')
  })

  await t.test('ostree checks the commit, qemu-img the disk', async (t) => {
    const meta = await readJson(join(dir, 'meta.json'))
    const fsck = await execa('ostree', ['fsck', `--repo=${join(work, 'tmp/repo')}`], { reject: false, all: true })
    t.equal(fsck.exitCode, 0, `ostree fsck of tmp/repo: ${fsck.all}`)
    const exported = await tempDir(t, 'ostree-arm64-')
    await execa('tar', ['-C', exported, '-xf', join(dir, meta.images.ostree.path)])
    const fsck2 = await execa('ostree', ['fsck', `--repo=${exported}`], { reject: false, all: true })
    t.equal(fsck2.exitCode, 0, `ostree fsck of images.ostree: ${fsck2.all}`)
    const rev = await execa('ostree', ['rev-parse', `--repo=${exported}`, meta.ref])
    t.equal(rev.stdout.trim(), meta['ostree-commit'], 'the tarball holds the commit on cosa-lite/aarch64/minimal')

    const qcow2 = join(dir, meta.images.qemu.path)
    const check = await execa('qemu-img', ['check', qcow2], { reject: false, all: true })
    t.equal(check.exitCode, 0, `qemu-img check: ${check.all}`)
    const raw = join(await tempDir(t, 'disk-arm64-'), 'disk.raw')
    await execa('qemu-img', ['convert', '-O', 'raw', qcow2, raw])
    const table = JSON.parse((await execa('sfdisk', ['--json', raw])).stdout).partitiontable
    const root = table.partitions.find((p: { name: string }) => p.name === 'root')
    t.equal(root?.type, 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE', 'the root partition has the aarch64 root type')
  })

  await t.test('the boot test is skipped for aarch64, and says why', async (t) => {
    const report = await readJson(join(work, 'tmp/kola/reports/report.json'))
    t.equal(report.result, 'SKIP', 'kola\'s report says SKIP')
    t.match(report.tests[0]['cosa-lite'].reason, /unsupported: cosa-lite boot-tests x86_64 images only, not aarch64/)
    t.equal(await readFile(join(work, 'tmp/kola/exit-status'), 'utf8'), `0 ${id}\n`, 'exit 0, as kola exits for a skipped test')
  })

  await t.test('the same inputs again: unchanged', async (t) => {
    const again = performance.now()
    const r = await inBuildContainer(image, { work, config: repo.dir, api }, script)
    t.comment(`an unchanged build under arm64 emulation: ${seconds(again)} s`)
    t.equal(r.exitCode, 0, r.all)
    t.match(r.stdout, /No apparent changes since previous commit/, 'cosa build saw no change')
    t.equal(reports.at(-1)?.url, '/v1/builds/arm64/result?outcome=unchanged&arch=aarch64', 'reported unchanged')
    t.equal(await readlink(join(work, 'builds/latest')), id, 'builds/latest did not move')
  })
})
