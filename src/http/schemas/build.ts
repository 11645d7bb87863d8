import { z } from 'zod'
import { buildStates, failureReasons } from '../../builds/build-state.js'
import { COSA_BUILD_ID } from '../../cosa/meta.js'
import { Timestamp } from './common.js'

export const BuildState = z.enum(buildStates)

export const BuildRequest = z.strictObject({
  force: z.boolean().optional().meta({ description: 'build even when the inputs are unchanged (cosa build --force)' }),
  version: z.string().regex(COSA_BUILD_ID).optional().meta({ description: 'build id (cosa build --version)' }),
  commit: z.string().regex(/^[0-9a-f]{40}([0-9a-f]{24})?$/, 'commit must be a full git commit id').optional()
    .meta({ description: 'config commit to build instead of the stream ref\'s head' }),
  skipPrune: z.boolean().optional().meta({ description: 'keep older builds in the workdir (cosa build --skip-prune)' }),
  platforms: z.array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/)).min(1).max(16).optional()
    .meta({ description: 'image platforms for this build; default the stream\'s' })
}).meta({ id: 'BuildRequest' })

export const Artifact = z.object({
  name: z.string().meta({ description: 'the meta.json images key, e.g. ostree or qemu' }),
  path: z.string().meta({ description: 'builds/<id>/<arch>/<file>: in the stream\'s cosa workdir, and under ' +
    '/v1/streams/{stream}/ in the store' }),
  sha256: z.string(),
  size: z.number().int(),
  url: z.string().optional().meta({ description: 'download route on this API (relative), once published' }),
  location: z.string().optional().meta({ description: 'where the artifact store keeps it: a path or s3:// URL' })
}).meta({ id: 'Artifact' })

export const PublishedFile = z.object({
  path: z.string().meta({ description: 'builds/<id>/<arch>/<file> or builds/<id>/<file>, under /v1/streams/{stream}/ in the store' }),
  sha256: z.string(),
  size: z.number().int()
}).meta({ id: 'PublishedFile' })

export const BootTest = z.object({
  status: z.enum(['passed', 'failed', 'warned', 'skipped']).meta({
    description: 'warned: only units the stream allows to fail failed (kola exit 77); skipped: nothing to boot (no kernel, or no qemu image)'
  }),
  reason: z.string().nullable().meta({ description: 'why it did not pass: emergency, kernel-panic, degraded, check, timeout, qemu-exited, … (docs/boot-test.md)' }),
  accel: z.enum(['kvm', 'tcg']).nullable(),
  durationMs: z.number(),
  milestones: z.record(z.string(), z.number()).meta({ description: 'ms from qemu\'s start: firstOutput, switch-root, shell, multi-user, checked' }),
  systemState: z.string().nullable().meta({ description: '`systemctl is-system-running`: running, degraded, …' }),
  failedUnits: z.array(z.string()),
  bootedCommit: z.string().nullable().meta({ description: 'the OSTree commit the guest booted (meta.json ostree-commit when it passed)' }),
  findings: z.array(z.object({ pattern: z.string(), source: z.string(), line: z.string() }))
    .meta({ description: 'console or journal lines that matched a failure pattern' })
}).meta({ id: 'BootTest' })

export const BuildAttempt = z.object({
  engine: z.string().optional().meta({ description: 'the engine it ran on' }),
  arch: z.string().optional(),
  startedAt: Timestamp.optional(),
  endedAt: Timestamp,
  state: z.enum(['succeeded', 'unchanged', 'failed', 'cancelled']).meta({
    description: 'how it ended: the build\'s final state, or `failed` (reason `infrastructure`) for an attempt that was retried'
  }),
  reason: z.enum(failureReasons).optional(),
  message: z.string().optional(),
  failedStep: z.string().optional().meta({ description: 'the phase it was in when it failed' })
}).meta({ id: 'BuildAttempt' })

const BuildResult = z.object({
  cosaBuildId: z.string(),
  arch: z.string(),
  ostreeCommit: z.string(),
  artifacts: z.array(Artifact),
  files: z.array(PublishedFile).optional()
    .meta({ description: 'every file the build published (succeeded builds): images, metadata and whatever else cosa wrote' })
})

export const ArchRun = z.object({
  arch: z.string(),
  state: z.enum(['pending', 'waiting', 'running', 'succeeded', 'unchanged', 'failed', 'cancelled', 'skipped']).meta({
    description: 'pending: not started; waiting: for an engine of the arch (waitingFor says why); unchanged: the ' +
      'primary found nothing changed, or (another arch) the build has this arch already; skipped: not run, ' +
      'an arch before it failed or was cancelled'
  }),
  engine: z.string().optional(),
  startedAt: Timestamp.optional(),
  finishedAt: Timestamp.optional(),
  waitingFor: z.string().optional().meta({ description: 'while waiting: slot, engine_unavailable or no_engine_for_arch' }),
  reason: z.enum(failureReasons).optional(),
  message: z.string().optional(),
  exitCode: z.number().int().optional(),
  result: BuildResult.omit({ files: true }).optional().meta({
    description: 'the cosa build this arch made or found; a secondary arch\'s artifact URLs are in cosa\'s layout ' +
      '(/v1/streams/{stream}/builds/<id>/<arch>/<file>), the build\'s artifact route serving the primary\'s'
  })
}).meta({ id: 'ArchRun' })

export const Build = z.object({
  id: z.string(),
  stream: z.string(),
  state: BuildState,
  reason: z.enum(failureReasons).optional().meta({ description: 'why a failed build failed' }),
  message: z.string().optional(),
  exitCode: z.number().int().optional(),
  request: z.object({
    force: z.boolean(),
    skipPrune: z.boolean(),
    version: z.string().optional(),
    commit: z.string().optional(),
    platforms: z.array(z.string()).optional()
  }),
  queuePosition: z.number().int().optional().meta({
    description: 'while queued: with waitingFor stream_busy, its place in its stream\'s queue; otherwise how many ' +
      'builds that can start now are ahead of it, plus one (1 is next)'
  }),
  waitingFor: z.enum(['stream_busy', 'slot', 'engine_unavailable', 'no_engine_for_arch', 'storage_low']).optional().meta({
    description: 'while queued: a build of its stream runs or is queued before it (stream_busy); every slot ' +
      '(builds.maxConcurrent) or every engine of its arch is full, or it waits for its home engine, or it is about ' +
      'to start (slot); no engine of its arch answers (engine_unavailable); no engine serves its arch, or every one ' +
      'is draining (no_engine_for_arch); free space is below storage.minFreeBytes (storage_low)'
  }),
  pinned: z.boolean().optional().meta({ description: 'with a result: whether its cosa build is pinned against retention' }),
  phase: z.string().optional().meta({
    description: 'while running: `preparing` (config, workdir), then each recipe step as it starts, named by its ' +
      'cosa subcommand and plain arguments (`init`, `fetch`, `build`, `osbuild qemu`…), then `publishing`'
  }),
  failedStep: z.string().optional().meta({ description: 'a failed build: the phase it was in when it failed' }),
  configCommit: z.string().optional().meta({ description: 'the config repository commit this build built' }),
  containerId: z.string().optional(),
  engine: z.string().optional().meta({ description: 'the engine that ran the build (`local` for the Docker engine beside the service, by default)' }),
  arch: z.string().optional().meta({ description: 'the architecture the build ran on, as cosa names it: x86_64, aarch64, s390x or ppc64le' }),
  cancelRequestedAt: Timestamp.optional(),
  createdAt: Timestamp,
  startedAt: Timestamp.optional(),
  finishedAt: Timestamp.optional(),
  result: BuildResult.optional().meta({
    description: 'the cosa build made (succeeded) or found unchanged (unchanged); of a multi-arch build, the primary ' +
      'arch\'s, with every arch\'s files'
  }),
  arches: z.array(ArchRun).optional().meta({
    description: 'a build of a stream with several arches: each arch\'s state, engine, timings and artifacts, the ' +
      'primary (the one that decides the cosa build id) first. `engine` and `arch` name the one running now, or last'
  }),
  bootTest: BootTest.optional().meta({
    description: 'a new build of a stream with bootTest enabled: how `cosa kola run basic` ended. The console and ' +
      'journal: GET /v1/builds/{id}/boot-test/{file}'
  }),
  attempts: z.array(BuildAttempt).optional().meta({
    description: 'each run on an engine that ended, oldest first; more than one when an attempt failed for ' +
      '`infrastructure` reasons and was retried (builds.infrastructureRetries). The attempt running now is the ' +
      'build\'s own engine and startedAt'
  })
}).meta({ id: 'Build' })

export const BuildList = z.object({
  builds: z.array(Build),
  nextCursor: z.string().optional().meta({ description: 'pass as ?cursor= for the next (older) page' })
})

export const BuildParams = z.object({ id: z.string().min(1).max(64) })
