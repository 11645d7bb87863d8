import { execa } from 'execa'
import { join } from 'node:path'
import t from 'tap'
import { IMAGE, ROOT, requireDocker } from '../helpers.js'

// The boot test's pattern scanner and probe parser (cosa-lite's kolacheck.py)
// on fixture excerpts of real boots: Python's unittest, run with the image's
// own Python and modules, so what is tested is what ships.

t.test('kolacheck unit tests pass in the cosa-lite image', async (t) => {
  if (!await requireDocker(t)) return
  const dir = join(ROOT, 'test/images/kola')
  const r = await execa('docker', ['run', '--rm', '--network=none', '--cap-drop=ALL', '-v', `${dir}:/t:ro`,
    '-e', 'PYTHONPATH=/usr/lib/coreos-assembler', '-e', 'PYTHONDONTWRITEBYTECODE=1', '--entrypoint', 'python3',
    IMAGE, '-m', 'unittest', 'discover', '-v', '-s', '/t'], { reject: false, all: true })
  t.equal(r.exitCode, 0, String(r.all))
  t.match(String(r.all), /Ran \d+ tests/, 'the tests ran')
  t.notMatch(String(r.all), /Ran 0 tests/, 'and found some')
})
