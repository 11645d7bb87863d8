import t from 'tap'
import { DEFAULT_RECIPE, missingImages, recipeProblem, renderScript, requiredImages, stepPhase } from '../../src/cosa/recipe.js'
import { execa } from 'execa'

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
