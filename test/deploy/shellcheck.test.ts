import { execa } from 'execa'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, tempDir } from '../helpers.js'

// Every shell script of the project passes shellcheck (.shellcheckrc holds
// the project-wide settings).

const scripts = async () => {
  const { stdout } = await execa('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.sh'], { cwd: ROOT })
  return [...stdout.split('\n').filter(Boolean), '.ci/run']
}

t.test('shellcheck finds nothing in the project\'s shell scripts', async (t) => {
  const files = await scripts()
  t.ok(files.includes('scripts/ensure-node.sh') && files.includes('images/node-base/build.sh'), `checks ${files.join(', ')}`)
  const r = await execa('shellcheck', files, { cwd: ROOT, reject: false, all: true })
  t.equal(r.exitCode, 0, r.all || 'clean')
})

t.test('the check can fail: an unquoted variable is reported', async (t) => {
  const bad = join(await tempDir(t), 'bad.sh')
  await writeFile(bad, '#!/usr/bin/env bash\nrm -rf $1/tmp\n')
  const r = await execa('shellcheck', [bad], { cwd: ROOT, reject: false, all: true })
  t.match(r.all, /SC2086/)
})
