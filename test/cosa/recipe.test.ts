import t from 'tap'
import { bootTestStep, DEFAULT_RECIPE, missingImages, recipeProblem, renderScript, requiredImages, stepPhase } from '../../src/cosa/recipe.js'
import { execa } from 'execa'
import { readFile } from 'node:fs/promises'

const base = { url: 'file:///run/cosa-buildd/config.git', ref: 'main', commit: 'a'.repeat(40), platforms: ['qemu', 'metal'] }

t.test('the default recipe is valid and runs the image step only after a new build', async (t) => {
  t.equal(recipeProblem(DEFAULT_RECIPE), undefined)
  const script = renderScript({ ...base, recipe: DEFAULT_RECIPE, request: { force: true, skipPrune: true, version: '1.2' } })
  t.match(script, /cosa init --force --branch main --commit a{40} file:\/\/\/run\/cosa-buildd\/config\.git/)
  t.match(script, /cosa build --force --version 1\.2 --skip-prune\n/)
  const [before, after] = script.split('new=$(readlink builds/latest')
  t.notMatch(before, /cosa osbuild/)
  t.match(after, /then\n {2}outcome=built\n.*\n {2}cosa osbuild qemu metal\n/)
  const { exitCode } = await execa('bash', ['-n', '-c', script], { reject: false })
  t.equal(exitCode, 0, 'bash parses the script')
})

t.test('{platform} repeats a step per platform, for older cosa', async (t) => {
  const recipe = [['build'], ['buildextend-{platform}', '--build', 'x']]
  t.equal(recipeProblem(recipe), undefined)
  const script = renderScript({ ...base, recipe, request: { force: false, skipPrune: false } })
  t.match(script, /cosa buildextend-qemu --build x\n[\s\S]*cosa buildextend-metal --build x\n/)
})

t.test('arguments are quoted, never interpreted by the shell', async (t) => {
  const recipe = [['build', '--version', '$(touch /tmp/pwned)'], ['meta', '--set', "a='b c'"]]
  const script = renderScript({ ...base, recipe, request: { force: false, skipPrune: false } })
  t.match(script, /cosa build --version '\$\(touch \/tmp\/pwned\)'/)
  t.match(script, /cosa meta --set 'a='\\''b c'\\'''/)
})

t.test('bad recipes are refused with the reason', async (t) => {
  t.match(recipeProblem([]), /at least/)
  t.match(recipeProblem([['fetch']]), /exactly one "build"/)
  t.match(recipeProblem([['build'], ['build']]), /exactly one "build"/)
  t.match(recipeProblem([['Build;rm']]), /not a cosa subcommand/)
  t.match(recipeProblem([['build', 'x{url}']]), /embedded placeholder/)
  t.match(recipeProblem([['build', '{nope}']]), /unknown/)
  t.match(recipeProblem([['build', 'a\nb']]), /line breaks/)
})

t.test('the images a complete build has follow the recipe and the platforms', async (t) => {
  t.same(requiredImages(DEFAULT_RECIPE, ['qemu', 'metal']), ['ostree', 'qemu', 'metal'])
  t.same(requiredImages([['build'], ['buildextend-{platform}']], ['qemu', 'live']), ['ostree', 'qemu', 'live-iso'], 'live writes live-iso')
  t.same(requiredImages([['init', '{url}'], ['build'], ['osbuild', 'qemu']], ['qemu']), ['ostree'],
    'a recipe that names no platform placeholder makes no platform images it could be held to')
  t.same(missingImages({ ostree: {}, qemu: {} }, ['ostree', 'qemu', 'metal']), ['metal'])
  t.same(missingImages({ ostree: {}, qemu: {} }, ['ostree', 'qemu']), [])
})

t.test('the phase a step marker names', async (t) => {
  const rows: Array<[string, string | undefined]> = [
    ['==> cosa init --force --branch main --commit 0123abc file:///config', 'init'],
    ['==> cosa fetch', 'fetch'],
    ['==> cosa build --force --version 1.2', 'build'],
    ['==> cosa osbuild qemu metal', 'osbuild qemu metal'],
    ['==> cosa kola run basic --qemu-memory 2048 --timeout 300', 'kola run basic'],
    ['==> cosa buildextend-qemu', 'buildextend-qemu'],
    ["==> cosa shell -- bash -c 'for i in 1; do echo; done'", 'shell'],
    ['==> cosa-buildd: service restarted; following the build container again', undefined],
    ['==> no new build: builds/latest is still 1.0', undefined],
    ['==> cosa --weird', undefined],
    ['tick 1', undefined]
  ]
  for (const [marker, phase] of rows) t.equal(stepPhase(marker), phase, marker)
  t.equal(stepPhase(`==> cosa ${'a'.repeat(100)}`)?.length, 64, 'bounded')
})

t.test('the boot test runs after the image steps of a new build, and its exit status is kept for the service', async (t) => {
  const setting = { enabled: true, mode: 'gate' as const, memoryMiB: 1536, allowFailedUnits: ['a.service'] }
  t.equal(bootTestStep({ ...setting, enabled: false }, DEFAULT_RECIPE, ['qemu']), undefined, 'not enabled: no step')
  t.equal(bootTestStep(setting, DEFAULT_RECIPE, ['metal']), undefined, 'no qemu image: no step')
  t.equal(bootTestStep(setting, [['build']], ['qemu']), undefined, 'a recipe without image steps: no step')
  const step = bootTestStep({ ...setting, timeoutSeconds: 90 }, DEFAULT_RECIPE, ['qemu'])
  t.same(step, ['kola', 'run', 'basic', '--qemu-memory', '1536', '--timeout', '90', '--allow-failed-unit', 'a.service'])
  const script = renderScript({ ...base, recipe: DEFAULT_RECIPE, request: { force: false, skipPrune: false }, bootTest: step })
  const [before, after] = script.split('new=$(readlink builds/latest')
  t.match(before, /rm -rf tmp\/kola\n/, 'an earlier report is removed first')
  t.notMatch(before, /cosa kola/)
  t.match(after, /cosa osbuild qemu metal\n {2}step 'cosa kola run basic[^']*'\n {2}kola_status=0\n {2}cosa kola run basic .* \|\| kola_status=\$\?\n {2}mkdir -p tmp\/kola\n {2}echo "\$kola_status \$new" > tmp\/kola\/exit-status\nelse/)
  t.equal((await execa('bash', ['-n', '-c', script], { reject: false })).exitCode, 0, 'bash parses the script')
  // The failing kola step does not end the script: the result is still posted.
  const dir = await mkdtempTmp()
  const run = await execa('bash', ['-c', 'set -euo pipefail; cd "$1"; new=1.0; cosa() { return 77; }\n' +
    after!.split('\n').filter((l) => /kola/.test(l) && !/^ *step/.test(l)).join('\n') + '\necho posted', '_', dir],
  { reject: false })
  t.equal(run.stdout, 'posted')
  t.equal(await readFile(`${dir}/tmp/kola/exit-status`, 'utf8'), '77 1.0\n', 'the status and the build tested')
})

async function mkdtempTmp () {
  const { mkdtemp } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  return mkdtemp(`${tmpdir()}/recipe-`)
}
