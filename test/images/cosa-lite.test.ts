import Ajv from 'ajv'
import { execa } from 'execa'
import { readFile, readlink, readdir, stat, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { metaSchema } from '../../src/cosa/meta.js'
import { configRepo, cosa, requireDocker, tempDir } from '../helpers.js'

// The cosa-lite contract, checked with real tools: ostree, qemu-img, sfdisk
// and debugfs read what it made, not our own parsers.

const validateMeta = new Ajv.default({ strict: false, allErrors: true }).compile(metaSchema)

const sha256 = (path: string) => new Promise<string>((resolve, reject) => {
  const h = createHash('sha256')
  createReadStream(path).on('data', (c) => h.update(c)).on('end', () => resolve(h.digest('hex'))).on('error', reject)
})

const readJson = async (path: string) => JSON.parse(await readFile(path, 'utf8'))

t.test('cosa-lite', async (t) => {
  if (!await requireDocker(t)) return
  const repo = await configRepo(t)
  const work = await tempDir(t, 'cosa-work-')
  const run = (...args: string[]) => cosa(work, repo.dir, ...args)
  const ok = async (...args: string[]) => {
    const r = await run(...args)
    if (r.exitCode !== 0) t.fail(`cosa ${args.join(' ')} exited ${r.exitCode}: ${r.all}`)
    return r
  }
  const latest = () => readlink(join(work, 'builds/latest')).catch(() => undefined)

  await ok('init', `file://${repo.dir}`)
  for (const d of ['builds', 'cache', 'tmp', 'overrides', 'src/config']) {
    t.ok((await stat(join(work, d))).isDirectory(), `init created ${d}/`)
  }
  await ok('fetch')
  await ok('build')
  const id = await latest()
  t.match(id, /^1\.\d{8}\.dev\.0$/, 'the id follows automatic-version-prefix')
  const dir = join(work, 'builds', id!, 'x86_64')

  await t.test('meta.json and builds.json follow cosa', async (t) => {
    const meta = await readJson(join(dir, 'meta.json'))
    t.ok(validateMeta(meta), `meta.json is valid: ${JSON.stringify(validateMeta.errors)}`)
    t.equal(meta.buildid, id)
    t.match(meta['rpm-ostree-inputhash'], /^[0-9a-f]{64}$/)
    const builds = await readJson(join(work, 'builds/builds.json'))
    t.equal(builds['schema-version'], '1.0.0')
    t.same(builds.builds, [{ id, arches: ['x86_64'] }])
    t.match(builds.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    for (const f of ['commitmeta.json', 'ostree-commit-object']) t.ok((await stat(join(dir, f))).size > 0, `${f} exists`)
  })

  await t.test('the ostree artifact holds a commit that ostree itself checks', async (t) => {
    const meta = await readJson(join(dir, 'meta.json'))
    const repoDir = await tempDir(t, 'ostree-')
    await execa('tar', ['-C', repoDir, '-xf', join(dir, meta.images.ostree.path)])
    const fsck = await execa('ostree', ['fsck', `--repo=${repoDir}`], { reject: false, all: true })
    t.equal(fsck.exitCode, 0, `ostree fsck: ${fsck.all}`)
    const log = await execa('ostree', ['log', `--repo=${repoDir}`, meta.ref])
    t.match(log.stdout, new RegExp(`commit ${meta['ostree-commit']}`))
    t.match(log.stdout, new RegExp(`Version: ${id!.replace(/\./g, '\\.')}`))
    const ls = await execa('ostree', ['ls', `--repo=${repoDir}`, meta['ostree-commit'], '/usr/etc/motd'])
    t.match(ls.stdout, /usr\/etc\/motd/, 'the overlay is in the commit, /etc moved to /usr/etc')
    t.equal(await sha256(join(dir, meta.images.ostree.path)), meta.images.ostree.sha256)
  })

  await ok('osbuild', 'qemu')
  await t.test('the qcow2 is a real, partitioned disk holding the deployment', async (t) => {
    const meta = await readJson(join(dir, 'meta.json'))
    t.ok(validateMeta(meta), 'meta.json with images.qemu is still valid')
    const qcow2 = join(dir, meta.images.qemu.path)
    t.equal(meta.images.qemu.path, `minimal-${id}-qemu.x86_64.qcow2`)
    t.equal(await sha256(qcow2), meta.images.qemu.sha256)
    t.equal((await stat(qcow2)).size, meta.images.qemu.size)
    const check = await execa('qemu-img', ['check', qcow2], { reject: false })
    t.equal(check.exitCode, 0, 'qemu-img check')
    const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', qcow2])).stdout)
    t.equal(info.format, 'qcow2')
    t.equal(info['virtual-size'], 1024 ** 3, 'image.yaml size: 1 GiB')

    const scratch = await tempDir(t, 'disk-')
    const raw = join(scratch, 'disk.raw')
    await execa('qemu-img', ['convert', '-O', 'raw', qcow2, raw])
    const table = JSON.parse((await execa('sfdisk', ['--json', raw])).stdout).partitiontable
    t.equal(table.label, 'gpt')
    t.same(table.partitions.map((p: { name: string }) => p.name), ['EFI-SYSTEM', 'boot', 'root'])
    const part = (name: string) => table.partitions.find((p: { name: string }) => p.name === name)
    const extract = async (name: string) => {
      const p = part(name)
      const out = join(scratch, `${name}.img`)
      await execa('dd', [`if=${raw}`, `of=${out}`, 'bs=512', `skip=${p.start}`, `count=${p.size}`, 'status=none'])
      return out
    }
    const root = await extract('root')
    const deploy = await execa('debugfs', ['-R', `ls -p /ostree/deploy/minimal/deploy`, root])
    t.match(deploy.stdout, new RegExp(`${meta['ostree-commit']}\\.0`), 'root holds the deployment')
    const label = await execa('e2label', [root])
    t.equal(label.stdout.trim(), 'root')
    const boot = await extract('boot')
    const entries = await execa('debugfs', ['-R', 'ls -p /loader/entries', boot])
    const entry = /ostree-1[^/]*\.conf/.exec(entries.stdout)?.[0]
    t.ok(entry, 'boot holds the BLS entry ostree wrote')
    const bls = await execa('debugfs', ['-R', `cat /loader/entries/${entry}`, boot])
    t.match(bls.stdout, /options .*root=LABEL=root.*ostree=\/ostree\/boot/, 'the entry boots the deployment')
    const esp = await extract('EFI-SYSTEM')
    const fsck = await execa('fsck.vfat', ['-n', esp], { reject: false, all: true })
    t.equal(fsck.exitCode, 0, `fsck.vfat: ${fsck.all}`)

    const again = await ok('osbuild', 'qemu')
    t.match(again.all, /already built/, 'a second osbuild skips without --force')
  })

  await t.test('unchanged inputs make no build and exit 0', async (t) => {
    const before = await readdir(join(work, 'builds'))
    const r = await ok('build')
    t.match(r.all, /No apparent changes since previous commit; use --force to override/)
    t.equal(await latest(), id)
    t.same(await readdir(join(work, 'builds')), before, 'nothing new in builds/')
  })

  await t.test('--force, an overlay change, and pruning to 3', async (t) => {
    await ok('build', '--force')
    t.equal(await latest(), id!.replace(/0$/, '1'), '--force makes the next id')
    await repo.commit('overlay.d/10-motd/usr/etc/motd', 'changed\n')
    await execa('rm', ['-rf', join(work, 'src/config')])
    await ok('init', '--force', `file://${repo.dir}`)
    await ok('build')
    t.equal(await latest(), id!.replace(/0$/, '2'), 'an overlay change makes a new build')
    await ok('build', '--force')
    const builds = await readJson(join(work, 'builds/builds.json'))
    t.same(builds.builds.map((b: { id: string }) => b.id), [3, 2, 1].map((n) => id!.replace(/0$/, String(n))),
      'newest first, pruned to the last 3')
    await t.rejects(stat(join(work, 'builds', id!)), 'the pruned build directory is gone')
    await ok('build', '--version', 'custom-1', '--skip-prune', '--force')
    t.equal(await latest(), 'custom-1')
    t.equal((await readJson(join(work, 'builds/builds.json'))).builds.length, 4, '--skip-prune kept 4')
    await ok('prune', '--keep-last-n', '2')
    t.equal((await readJson(join(work, 'builds/builds.json'))).builds.length, 2, 'cosa prune --keep-last-n 2')
  })

  await t.test('prune keeps tagged builds and refuses what upstream refuses', async (t) => {
    const path = join(work, 'builds/builds.json')
    const index = await readJson(path)
    const [newest, older] = index.builds.map((b: { id: string }) => b.id) as [string, string]
    await writeFile(path, JSON.stringify({ ...index, tags: [{ name: 'golden', target: older, created: '2026-11-30T00:00:00Z' }] }))
    const refused = async (what: string, message: RegExp, ...args: string[]) => {
      const r = await run('prune', ...args)
      t.equal(r.exitCode, 1, `${what}: exit 1`)
      t.match(r.all, message)
      t.same((await readJson(path)).builds.map((b: { id: string }) => b.id), [newest, older], `${what}: nothing pruned`)
    }
    await refused('a tagged build', new RegExp(`Build ${older} is tagged`), '--build', older)
    await refused('an unknown id beside a known one', /Build nope does not exist/, '--build', newest, '--build', 'nope')
    await refused('--build with --keep-last-n', /not allowed with argument/, '--build', newest, '--keep-last-n', '1')
    await ok('prune', '--keep-last-n', '1')
    t.same((await readJson(path)).builds.map((b: { id: string }) => b.id), [newest, older], 'the tagged build neither counts nor goes')
    await ok('prune', '--build', newest)
    t.same((await readJson(path)).builds.map((b: { id: string }) => b.id), [older], '--build prunes exactly that build')
    await t.rejects(stat(join(work, 'builds', newest)), 'and its directory')
  })

  await t.test('the command line is cosa\'s', async (t) => {
    for (const args of [['build', '--bogus'], ['no-such-command'], [], ['osbuild', 'aws'], ['init']]) {
      const r = await run(...args)
      t.equal(r.exitCode, 1, `cosa ${args.join(' ')} exits 1`)
    }
    const shell = await ok('shell', '--', 'bash', '-c', 'command -v cosa && echo "$PWD"')
    t.match(shell.stdout, /\/usr\/bin\/cosa\n\/srv/)
    const help = await run('build', '--help')
    t.equal(help.exitCode, 0)
    t.match(help.stdout, /--skip-prune/)
  })
})
