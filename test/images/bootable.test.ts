import Ajv from 'ajv'
import { execa } from 'execa'
import { spawn } from 'node:child_process'
import { readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { metaSchema } from '../../src/cosa/meta.js'
import { UNPRIVILEGED_CAPS } from '../../src/executor/docker/container-spec.js'
import { configRepo, cosaWith, requireDocker, tempDir } from '../helpers.js'

// examples/bootable: real Debian packages, fetched from the archive, built
// offline, deployed onto a disk, and booted in qemu (software emulation) to a
// login prompt by a direct kernel boot with the BLS entry ostree wrote.

const validateMeta = new Ajv.default({ strict: false }).compile(metaSchema)
const BOOT_SECONDS = 300

t.setTimeout(45 * 60_000)

t.test('the bootable example builds and boots to a login prompt', async (t) => {
  if (!await requireDocker(t)) return
  const repo = await configRepo(t, 'bootable')
  const work = await tempDir(t, 'cosa-boot-')
  const run = async (opts: Parameters<typeof cosaWith>[0], ...args: string[]) => {
    const r = await cosaWith({ caps: UNPRIVILEGED_CAPS, ...opts }, work, repo.dir, ...args)
    t.equal(r.exitCode, 0, `cosa ${args.join(' ')}${r.exitCode ? `: ${String(r.all).slice(-2000)}` : ''}`)
    return r.exitCode === 0
  }
  if (!await run({}, 'init', `file://${repo.dir}`)) return
  if (!await run({ network: 'host' }, 'fetch')) return
  if (!await run({ network: 'none' }, 'build')) return
  if (!await run({ network: 'none' }, 'osbuild', 'qemu')) return

  const id = await readlink(join(work, 'builds/latest'))
  const dir = join(work, 'builds', id, 'x86_64')
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'))
  t.ok(validateMeta(meta), 'meta.json is valid')

  const repoDir = await tempDir(t, 'boot-ostree-')
  await execa('tar', ['-C', repoDir, '-xf', join(dir, meta.images.ostree.path)])
  const modules = (await execa('ostree', ['ls', `--repo=${repoDir}`, '-R', meta['ostree-commit'], '/usr/lib/modules'])).stdout
  t.match(modules, /\/usr\/lib\/modules\/[^/\s]+\/vmlinuz\n/, 'the kernel is at /usr/lib/modules/<kver>/vmlinuz')
  t.match(modules, /\/usr\/lib\/modules\/[^/\s]+\/initramfs\.img\n/, 'and the initramfs beside it')
  const etc = await execa('ostree', ['ls', `--repo=${repoDir}`, meta['ostree-commit'], '/etc'], { reject: false })
  t.not(etc.exitCode, 0, '/etc is not in the commit')
  t.match((await execa('ostree', ['ls', `--repo=${repoDir}`, meta['ostree-commit'], '/usr/etc/os-release'])).stdout, /os-release/)

  // Direct kernel boot with the BLS entry, as a bootloader would.
  const scratch = await tempDir(t, 'boot-disk-')
  const raw = join(scratch, 'disk.raw')
  await execa('qemu-img', ['convert', '-O', 'raw', join(dir, meta.images.qemu.path), raw])
  const boot = JSON.parse((await execa('sfdisk', ['--json', raw])).stdout).partitiontable.partitions
    .find((p: { name: string }) => p.name === 'boot')
  const bootImg = join(scratch, 'boot.img')
  await execa('dd', [`if=${raw}`, `of=${bootImg}`, 'bs=512', `skip=${boot.start}`, `count=${boot.size}`, 'status=none'])
  const entry = /ostree-1[^/\s]*\.conf/.exec((await execa('debugfs', ['-R', 'ls -p /loader/entries', bootImg])).stdout)?.[0]
  const bls = (await execa('debugfs', ['-R', `cat /loader/entries/${entry}`, bootImg])).stdout
  const field = (k: string) => new RegExp(`^${k} (.*)$`, 'm').exec(bls)?.[1] ?? ''
  await execa('debugfs', ['-R', `dump ${field('linux')} ${join(scratch, 'vmlinuz')}`, bootImg])
  await execa('debugfs', ['-R', `dump ${field('initrd')} ${join(scratch, 'initramfs.img')}`, bootImg])

  const qemu = spawn('qemu-system-x86_64', ['-accel', 'tcg', '-m', '2048', '-smp', '2', '-nographic', '-no-reboot',
    '-drive', `file=${raw},if=virtio,format=raw,snapshot=on`, '-kernel', join(scratch, 'vmlinuz'),
    '-initrd', join(scratch, 'initramfs.img'), '-append', field('options')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let serial = ''
  const sawLogin = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), BOOT_SECONDS * 1000)
    qemu.stdout.on('data', (d) => {
      serial += d
      if (/login: ?$/m.test(serial)) { clearTimeout(timer); resolve(true) }
    })
    qemu.on('exit', () => { clearTimeout(timer); resolve(false) })
  })
  qemu.kill('SIGKILL')
  t.ok(sawLogin, `a login prompt within ${BOOT_SECONDS} s${sawLogin ? '' : `; console ends: ${serial.slice(-1500)}`}`)
  t.match(serial, /ostree-prepare-root/, 'ostree-prepare-root ran in the initramfs')
})
