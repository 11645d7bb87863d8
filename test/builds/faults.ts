import { DEFAULT_RECIPE } from '../../src/cosa/recipe.js'
import type { TestApp } from '../helpers.js'

// A recipe whose builds fail where a test says: the fault is the content of
// the file `fault` in the config repository, which is not one of cosa's
// inputs, so setting it changes nothing cosa compares.
//   early    before `cosa build` (after fetch): exit 4
//   exit     after `cosa build` made its build, before the image step: exit 3
//   oom      there, a 400 MiB allocation (give the stream less memory)
//   hang     there, `sleep 300` after printing "hanging" (cancel or time out)
//   corrupt  after the image step: one byte of the qcow2 changes, its size
//            does not, so publishing finds the sha256 wrong

const fault = (cases: string) => ['shell', '--', 'bash', '-c', `case "$(cat src/config/fault 2>/dev/null)" in ${cases} esac`]

export const FAULT_RECIPE = [
  ...DEFAULT_RECIPE.slice(0, 2),
  fault('early) echo failing early; exit 4;;'),
  DEFAULT_RECIPE[2]!,
  fault('exit) echo failing; exit 3;; oom) python3 -c "x = bytearray(400 << 20)";; hang) echo hanging; sleep 300;;'),
  DEFAULT_RECIPE[3]!,
  fault('corrupt) printf X | dd of="$(ls builds/latest/*/*.qcow2)" bs=1 seek=4096 conv=notrunc status=none;;')
]

export async function waitForLog (h: TestApp, id: string, text: string) {
  for (let i = 0; i < 600; i++) {
    if ((await h.app.inject({ url: `/v1/builds/${id}/log` })).body.includes(text)) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`the log of ${id} never showed ${text}`)
}
