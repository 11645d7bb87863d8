import { z } from 'zod'
import { Build } from './build.js'
import { BOOT_TEST_DEFAULT_MEMORY_MIB, BOOT_TEST_OVERHEAD_MIB, DEFAULT_RESOURCES } from '../../streams/stream-fit.js'
import { BASEARCHES } from '../../config.js'
import { SafeText, StreamName, Timestamp } from './common.js'

const SECRET_NAME = /^(?!COSA_BUILDD_|GIT_CONFIG_)[A-Z_][A-Z0-9_]{0,63}$/

const Platform = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'platforms are names like qemu or metal')

const Recipe = z.array(z.array(SafeText.min(1).max(4096)).min(1).max(64)).min(1).max(32).meta({
  description: 'cosa commands, without the leading `cosa`. Steps after `build` run only when it made a new build. ' +
    'Placeholders: {url} {ref} {commit} {build-flags} {platforms}, and {platform} inside an argument to repeat ' +
    'the step per platform (e.g. ["buildextend-{platform}"] for older cosa).',
  example: [['init', '--force', '--branch', '{ref}', '--commit', '{commit}', '{url}'], ['fetch'], ['build', '{build-flags}'], ['osbuild', '{platforms}']]
})

// Checked against the engine's `docker info` at registration (422 naming the field).
const Resources = z.strictObject({
  memoryBytes: z.number().int().min(64 * 1024 * 1024).optional()
    .meta({ description: `memory limit (swap is not allowed), at most the engine's memory; default ${DEFAULT_RESOURCES.memoryBytes / 1024 ** 3} GiB` }),
  cpus: z.number().min(0.1).max(1024).optional()
    .meta({ description: `CPU limit, at most the engine's CPUs; default ${DEFAULT_RESOURCES.cpus} (or the engine's CPUs if fewer)` }),
  pids: z.number().int().min(64).optional().meta({ description: `process limit; default ${DEFAULT_RESOURCES.pids}` })
})

// A unit name as systemd writes it (`systemctl --failed`).
const UnitName = z.string().regex(/^[A-Za-z0-9:_.\\@-]{1,255}\.(service|socket|mount|target|timer|path|swap|device|scope|slice|automount)$/,
  'units are systemd unit names like foo.service')

export const BootTestInput = z.strictObject({
  enabled: z.boolean().meta({ description: 'run `cosa kola run basic` after the image steps of every new build' }),
  mode: z.enum(['gate', 'warn']).default('gate').meta({
    description: 'gate: a failed test fails the build (reason boot_test) and nothing is published; warn: the build ' +
      'is published and the failure recorded in its bootTest. Default gate'
  }),
  timeoutSeconds: z.number().int().min(10).max(3600).optional().meta({
    description: 'seconds from qemu\'s start to the end of the checks; default kola\'s for the accelerator the boot ' +
      'uses (300 under TCG, 120 under KVM: only a boot decides whether KVM works)'
  }),
  memoryMiB: z.number().int().min(256).max(65536).default(BOOT_TEST_DEFAULT_MEMORY_MIB)
    .meta({ description: `guest RAM; the container's memory must cover it + ${BOOT_TEST_OVERHEAD_MIB} MiB. Default ${BOOT_TEST_DEFAULT_MEMORY_MIB}` }),
  allowFailedUnits: z.array(UnitName).max(64).optional()
    .meta({ description: 'units whose failure only warns (kola exit 77): the build is published with the warning' })
}).meta({ id: 'BootTestSetting' })

export const StreamInput = z.strictObject({
  config: z.strictObject({
    url: z.string().min(1).max(2048).meta({ description: 'https or ssh git URL (file:// only where the server allows it)' }),
    ref: z.string().min(1).max(255).regex(/^(?!-)[!-~]+$/, 'ref must be a git branch or tag name in printable ASCII')
      .regex(/^[^~^:?*[\\]+$/, 'ref must be a git branch or tag name')
  }),
  image: z.string().min(1).max(512).regex(/^[A-Za-z0-9][A-Za-z0-9._\-/:@+]*$/, 'image must be a Docker image reference')
    .optional().meta({ description: 'builder image, pinned; default the server\'s (cosa-lite:latest). It must be on the ' +
      'Docker engine when the engine answers at registration (422 otherwise); the service does not pull images.' }),
  platforms: z.array(Platform).min(1).max(16).optional().meta({ description: 'image platforms for the osbuild step; default ["qemu"]' }),
  arches: z.array(z.enum(BASEARCHES)).min(1).max(4)
    .refine((arches) => new Set(arches).size === arches.length, 'arches must not repeat an arch')
    .optional().meta({
      description: 'the basearches its builds run on, each natively on an engine of that arch (docs/engines.md); a ' +
        'build waits with `waitingFor: no_engine_for_arch` while no engine serves the first. The first (primary) ' +
        'decides the cosa build id and whether anything changed; each other arch then builds that same id and ' +
        'publishes builds/<id>/<arch>/ (see the build\'s `arches`). Default: the arch of the default engine'
    }),
  timeoutSeconds: z.number().int().min(1).max(7 * 24 * 3600).optional().meta({ description: 'wall-clock limit per build; default 21600 (6 h)' }),
  keep: z.number().int().min(1).max(10_000).optional()
    .meta({ description: 'builds kept in the artifact store, pinned ones not counted; default 10' }),
  resources: Resources.optional(),
  networkMode: z.string().regex(/^(none|host|bridge|[a-zA-Z0-9][a-zA-Z0-9_.-]*)$/).optional()
    .meta({ description: 'Docker network mode of the build container; default the server\'s (none)' }),
  recipe: Recipe.optional(),
  publicRead: z.boolean().optional().meta({
    description: 'serve the published builds (cosa\'s layout under /v1/streams/{stream}/builds/ and artifact ' +
      'downloads) without a token, for `cosa buildfetch --url`, which sends none; everything else still needs one. ' +
      'Default false'
  }),
  bootTest: BootTestInput.optional().meta({ description: 'boot-test each new build\'s qemu image (docs/boot-test.md)' }),
  secrets: z.record(z.string(),
    z.string().min(8, 'secrets must have at least 8 characters (shorter ones cannot be redacted safely)').max(65536)
  ).superRefine((record, ctx) => {
    const names = Object.keys(record)
    if (names.length > 32) ctx.addIssue({ code: 'custom', message: 'at most 32 secrets' })
    for (const name of names.filter((n) => !SECRET_NAME.test(n))) {
      ctx.addIssue({ code: 'custom', message: `secret ${JSON.stringify(name.slice(0, 64))}: names are environment variable names (A-Z, 0-9, _; not COSA_BUILDD_* or GIT_CONFIG_*)` })
    }
  }).optional()
    .meta({
      description: 'environment variables of every build, redacted from build logs; the API never returns their values',
      propertyNames: { pattern: SECRET_NAME.source }
    })
}).meta({ id: 'StreamRegistration' })

export const Stream = z.object({
  name: StreamName,
  config: z.object({ url: z.string(), ref: z.string() }),
  image: z.string(),
  platforms: z.array(z.string()),
  arches: z.array(z.string()).optional(),
  timeoutSeconds: z.number().int(),
  keep: z.number().int(),
  resources: z.object({ memoryBytes: z.number().optional(), cpus: z.number().optional(), pids: z.number().optional() }),
  networkMode: z.string().optional(),
  recipe: z.array(z.array(z.string())),
  publicRead: z.boolean(),
  secrets: z.array(z.string()).meta({ description: 'the names of the stream\'s secrets' }),
  bootTest: z.object({
    enabled: z.boolean(),
    mode: z.enum(['gate', 'warn']),
    timeoutSeconds: z.number().int().optional(),
    memoryMiB: z.number().int(),
    allowFailedUnits: z.array(z.string()).optional()
  }).optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  latestBuild: Build.optional().meta({ description: 'the newest build that made or found a cosa build: `readlink builds/latest`' })
}).meta({ id: 'Stream' })

export const StreamRegistered = Stream.extend({
  warnings: z.array(z.string()).optional().meta({
    description: 'what the stream was registered despite: an arch of its `arches` that no engine serves (or every ' +
      'engine of which is draining); its builds wait with `waitingFor: no_engine_for_arch` until one is added'
  })
}).meta({ id: 'StreamRegistered' })

export const StreamList = z.object({ streams: z.array(Stream) })
