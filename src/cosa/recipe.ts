import type { BootTestSetting, BuildRequest } from '../builds/model.js'

// A stream's recipe is a list of cosa commands. Steps after `build` run only
// when `build` made a new build: cosa exits 0 either way, and the documented
// test is whether `readlink builds/latest` changed.
//
// Placeholders (whole arguments unless noted):
//   {url} {ref} {commit}   the config repository as the container sees it
//   {build-flags}          --force / --version V / --skip-prune from the request
//   {platforms}            the platforms, as separate arguments
//   {platform}             inside an argument: the step repeats per platform,
//                          e.g. ["buildextend-{platform}"] for older cosa

export type Recipe = string[][]

export const DEFAULT_RECIPE: Recipe = [
  ['init', '--force', '--branch', '{ref}', '--commit', '{commit}', '{url}'],
  ['fetch'],
  ['build', '{build-flags}'],
  ['osbuild', '{platforms}']
]

const WHOLE = new Set(['{url}', '{ref}', '{commit}', '{build-flags}', '{platforms}'])
const SUBCOMMAND = /^[a-z][a-z0-9-]*(\{platform\})?[a-z0-9-]*$/

/** Why the recipe cannot run, or undefined when it can. */
export function recipeProblem (recipe: Recipe): string | undefined {
  if (recipe.length === 0) return 'recipe must list at least the build step'
  for (const [i, step] of recipe.entries()) {
    const [cmd, ...args] = step
    if (!cmd || !SUBCOMMAND.test(cmd)) return `recipe step ${i}: ${JSON.stringify(cmd ?? '')} is not a cosa subcommand`
    for (const arg of args) {
      if (/[\0\n\r]/.test(arg)) return `recipe step ${i}: arguments must not contain NUL or line breaks`
      const braces = arg.match(/\{[a-z-]+\}/g) ?? []
      for (const b of braces) {
        if (b === '{platform}') continue
        if (!WHOLE.has(b) || b !== arg) return `recipe step ${i}: unknown or embedded placeholder ${b}`
      }
    }
  }
  const builds = recipe.filter((s) => s[0] === 'build').length
  if (builds !== 1) return `recipe must have exactly one "build" step (found ${builds})`
  return undefined
}

// cosa names most images after their platform; these are the exceptions
// (`live` writes live-iso, live-kernel, live-initramfs and live-rootfs).
const PLATFORM_IMAGE: Record<string, string> = { live: 'live-iso' }

/**
 * The meta.json `images` keys a complete build has: the OSTree commit, and
 * one image per platform when the recipe makes platform images (a step that
 * names {platforms} or {platform}); a recipe that names neither makes none.
 */
export function requiredImages (recipe: Recipe, platforms: readonly string[]): string[] {
  const makesImages = recipe.some((step) => step.some((arg) => arg === '{platforms}' || arg.includes('{platform}')))
  return ['ostree', ...(makesImages ? platforms.map((p) => PLATFORM_IMAGE[p] ?? p) : [])]
}

/** The required images a meta.json lacks. */
export const missingImages = (images: Record<string, unknown>, required: readonly string[]) =>
  required.filter((name) => images[name] === undefined)

const PHASE_WORD = /^[a-z][a-z0-9-]*$/

/**
 * The phase a step marker names: `==> cosa osbuild qemu metal` is
 * `osbuild qemu metal`, `==> cosa init --force …` is `init` (the subcommand
 * and the plain words after it, up to the first option or value).
 */
export function stepPhase (marker: string): string | undefined {
  const m = /^==> cosa (.*)$/.exec(marker)
  if (!m) return undefined
  const words: string[] = []
  for (const word of m[1]!.split(' ')) {
    if (!PHASE_WORD.test(word)) break
    words.push(word)
  }
  return words.length ? words.join(' ').slice(0, 64) : undefined
}

export interface RecipeInput {
  recipe: Recipe
  url: string
  ref: string
  commit: string
  request: BuildRequest
  platforms: string[]
  /** The boot-test step (bootTestStep), run after every other step of a new build. */
  bootTest?: string[] | undefined
}

// kola's layout under the workdir (its default --output-dir), which real cosa
// and cosa-lite share; the exit status is the script's, written after the step.
export const KOLA_DIR = 'tmp/kola'
export const KOLA_REPORT = `${KOLA_DIR}/reports/report.json`
export const KOLA_STATUS = `${KOLA_DIR}/exit-status`

/**
 * The `cosa kola run basic` step of a stream's boot test, or undefined when
 * there is none: not enabled, or the build makes no qemu image to boot.
 * `basic` comes first so that the phase is `kola run basic`. --timeout and
 * --allow-failed-unit are cosa-lite's (docs/boot-test.md); without a
 * timeout kola picks its own for the accelerator it ends up using.
 */
export function bootTestStep (setting: BootTestSetting | undefined, recipe: Recipe, platforms: readonly string[]) {
  if (!setting?.enabled || !requiredImages(recipe, platforms).includes('qemu')) return undefined
  return ['kola', 'run', 'basic', '--qemu-memory', String(setting.memoryMiB),
    ...(setting.timeoutSeconds ? ['--timeout', String(setting.timeoutSeconds)] : []),
    ...(setting.allowFailedUnits ?? []).flatMap((unit) => ['--allow-failed-unit', unit])]
}

export const buildFlags = (r: BuildRequest) => [
  ...(r.force ? ['--force'] : []),
  ...(r.version ? ['--version', r.version] : []),
  ...(r.skipPrune ? ['--skip-prune'] : [])
]

const quote = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)

function expand (step: string[], input: RecipeInput): string[][] {
  const values: Record<string, string[]> = {
    '{url}': [input.url],
    '{ref}': [input.ref],
    '{commit}': [input.commit],
    '{build-flags}': buildFlags(input.request),
    '{platforms}': input.platforms
  }
  const once = (platform?: string) => step.flatMap((arg) => {
    const whole = values[arg]
    if (whole) return whole
    return [platform === undefined ? arg : arg.replaceAll('{platform}', platform)]
  })
  return step.some((a) => a.includes('{platform}')) ? input.platforms.map(once) : [once()]
}

/**
 * kola's exit status (0 passed or skipped, 77 warned, else failed) is the
 * service's to judge, not the script's; it is written with the build id
 * tested, so that a file left by another build is never taken for this one's.
 */
function bootTestLines (argv: string[]) {
  const cmd = ['cosa', ...argv].map(quote).join(' ')
  return `step ${quote(cmd)}\nkola_status=0\n${cmd} || kola_status=$?\nmkdir -p ${KOLA_DIR}\necho "$kola_status $new" > ${KOLA_STATUS}`
}

/**
 * On an engine that keeps its own workdir the service copies the build's
 * files back once it ends, unless the build sends them itself first
 * (src/builds/workdir-upload.ts): its network must reach the API. One try,
 * no retries: the copy through the engine is always there.
 */
const UPLOAD = `  if [ -n "\${COSA_BUILDD_UPLOAD_URL:-}" ] && [ "$outcome" = built ]; then
    step "sending build $new to the service"
    up=(builds/builds.json builds/latest "builds/$new")
    if [ -d ${KOLA_DIR} ]; then up+=(${KOLA_DIR}); fi
    answer=$(mktemp)
    if ! tar -cf - -- "\${up[@]}" | curl -sS --fail-with-body -T - -o "$answer" -H "Authorization: Bearer $COSA_BUILDD_TOKEN" \\
        -H 'Content-Type: application/x-tar' "$COSA_BUILDD_UPLOAD_URL?cosaBuild=$new"; then
      step "the service did not take it (it copies the files through the engine instead): $(cat "$answer")"
    fi
  fi`

/**
 * The bash program the container runs: the cosa steps, then the outcome
 * written to COSA_BUILDD_RESULT_FILE for the service to read after the
 * build, and posted to the API (meta.json as the body) where the build can
 * reach it (COSA_BUILDD_RESULT_URL: not on an engine that keeps its own
 * workdir). A result that cannot be posted does not
 * fail the script: the service then ends the build `invalid_result`.
 */
export function renderScript (input: RecipeInput): string {
  const lines = (step: string[]) => expand(step, input).map((argv) => {
    const cmd = ['cosa', ...argv].map(quote).join(' ')
    return `step ${quote(cmd)}\n${cmd}`
  }).join('\n')
  const buildAt = input.recipe.findIndex((s) => s[0] === 'build')
  const before = input.recipe.slice(0, buildAt + 1).map(lines).join('\n')
  const after = [...input.recipe.slice(buildAt + 1).map(lines), ...(input.bootTest ? [bootTestLines(input.bootTest)] : [])]
    .join('\n') || ':'
  return `set -euo pipefail
cd /srv
step() { printf '==> %s\\n' "$1"; }
${input.bootTest ? `# A report left by an earlier build must not pass for this one's.\nrm -rf ${KOLA_DIR}\n` : ''}# An earlier build's report must not pass for this one's.
if [ -n "\${COSA_BUILDD_RESULT_FILE:-}" ]; then rm -f "$COSA_BUILDD_RESULT_FILE"; fi
# cosa init keeps an existing src/config; start from the resolved commit.
rm -rf src/config src/config-git
prev=$(readlink builds/latest 2>/dev/null || true)
${before}
new=$(readlink builds/latest 2>/dev/null || true)
if [ -n "$new" ] && [ "$new" != "$prev" ]; then
  outcome=built
${after.replace(/^/gm, '  ')}
else
  outcome=unchanged
  step "no new build: builds/latest is still \${prev:-unset}"
fi
arch=$(uname -m)
meta="builds/\${new}/\${arch}/meta.json"
if [ -z "$new" ] || [ ! -f "$meta" ]; then
  step "no meta.json to report (builds/latest: \${new:-unset})"
  exit 0
fi
step "reporting $outcome build $new ($arch)"
if [ -n "\${COSA_BUILDD_RESULT_FILE:-}" ]; then
  # The service reads it from the workdir once the build has ended: on an engine that keeps its own
  # workdir always, on the service's host when the post below did not get through.
  mkdir -p "$(dirname "$COSA_BUILDD_RESULT_FILE")"
  printf '%s %s %s %s\n' "$COSA_BUILDD_BUILD_ID" "$outcome" "$arch" "$new" > "$COSA_BUILDD_RESULT_FILE"
${UPLOAD}
  # No URL: the report is the only way (a remote engine's build has no network).
  if [ -z "\${COSA_BUILDD_RESULT_URL:-}" ]; then exit 0; fi
fi
sock=()
if [ -n "\${COSA_BUILDD_RESULT_SOCKET:-}" ]; then sock=(--unix-socket "$COSA_BUILDD_RESULT_SOCKET"); fi
answer=$(mktemp)
if ! curl -sS --fail-with-body --retry 5 --retry-all-errors --retry-delay 1 "\${sock[@]}" -o "$answer" \\
    -H "Authorization: Bearer $COSA_BUILDD_TOKEN" -H 'Content-Type: application/json' \\
    --data-binary @"$meta" "$COSA_BUILDD_RESULT_URL?outcome=$outcome&arch=$arch"; then
  step "the result was not accepted: $(cat "$answer")"
fi
`
}
