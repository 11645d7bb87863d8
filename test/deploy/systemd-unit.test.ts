import { execa } from 'execa'
import { copyFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, tempDir } from '../helpers.js'

// deploy/cosa-buildd.service as systemd reads it: `systemd-analyze verify`
// works offline (no systemd needs to run) and warns about unknown keys,
// bad values and missing executables.

const UNIT = join(ROOT, 'deploy/cosa-buildd.service')

const verify = (path: string) => execa('systemd-analyze', ['verify', path], { reject: false, all: true })

t.test('systemd-analyze verify finds nothing to say about the unit', async (t) => {
  const r = await verify(UNIT)
  t.equal(r.exitCode, 0)
  t.equal(r.all, '', 'no warnings')
})

t.test('the check can fail: a misspelt key is reported', async (t) => {
  const copy = join(await tempDir(t), 'cosa-buildd.service')
  await copyFile(UNIT, copy)
  await execa('sed', ['-i', 's/^NoNewPrivileges=/NoNewPrivilege=/', copy])
  t.match((await verify(copy)).all, /Unknown key 'NoNewPrivilege'/)
})

t.test('the unit rides out engine restarts and keeps the sandboxing Node.js tolerates', async (t) => {
  const unit = await readFile(UNIT, 'utf8')
  const keys = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].flatMap((m) => m[1]!.split(/\s+/))
  t.notOk(keys('Requires').includes('docker.service'), 'stopping Docker does not stop the service')
  t.ok(keys('Wants').includes('docker.service') && keys('After').includes('docker.service'))
  t.ok(keys('Wants').includes('network-online.target') && keys('After').includes('network-online.target'))
  t.same(keys('MemoryDenyWriteExecute'), [], "V8's JIT needs W+X memory")
  t.same(keys('KillMode'), ['process'], 'stopping the service does not kill build containers')
  for (const key of ['NoNewPrivileges', 'ProtectSystem', 'PrivateTmp', 'SystemCallFilter']) t.ok(keys(key).length, `${key} is set`)
})
