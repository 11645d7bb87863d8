import { mkdir } from 'node:fs/promises'
import { syncWorkdir } from '../../artifacts/workdir-sync.js'
import { urlPolicy } from '../../config.js'
import { missingImages, requiredImages } from '../../cosa/recipe.js'
import { ConfigError } from '../../git/config-mirror.js'
import { configUrlRefusal } from '../../git/config-url.js'
import { describeProblems, effectiveResources, resourceProblems } from '../../streams/stream-fit.js'
import type { Final } from '../lifecycle.js'
import { SecretRedactor } from '../log-sanitizer.js'
import type { BuildRequest, Stream } from '../model.js'
import { mintToken } from '../result-token.js'
import { secondaryArch } from './arches.js'
import { failed, isFinal, platformsOf, recipeOf, workdirOf, type RunContext } from './context.js'

// The first step of a run: the config commit (mirror), the engine and its
// arch, the builder image and its user, the result token, the stream's
// resources against the engine and the workdir in step with the artifact
// store (for the engine's arch), and the engine's copy of it where the
// engine keeps its own. Any of them may end the build.

export interface Prepared {
  commit: string
  /** The result token the container posts with. */
  token: string
  /** As the container runs it: forced when the store's latest build lacks an image asked for. */
  request: BuildRequest
  resources: ReturnType<typeof effectiveResources>
}

export async function prepare (ctx: RunContext, stream: Stream): Promise<Prepared | Final> {
  const { deps, build, executor } = ctx
  const commit = await resolveCommit(ctx, stream)
  if (typeof commit !== 'string') return commit
  const arch = await executor.arch()
  await deps.lifecycle.record(build.id, { configCommit: commit, engine: executor.name, arch })
  await deps.logs.note(build.id, `config commit ${commit}`)
  await deps.logs.note(build.id, `engine ${executor.name} (${arch})`)
  const user = await executor.imageUser(stream.image)
  if (user === undefined) {
    return failed('image_unavailable',
      `builder image ${stream.image} is not on the Docker engine: build or load it (npm run image:cosa-lite)`)
  }
  const { token, hash } = mintToken()
  await deps.lifecycle.record(build.id, { resultTokenHash: hash })
  ctx.redactor = new SecretRedactor([...Object.values(stream.secrets ?? {}), token])
  const fit = await fitAndSync(ctx, stream, arch)
  if (isFinal(fit)) return fit
  await executor.prepareWorkspace({ stream: stream.name, arch: secondaryArch(build), image: stream.image, user, buildId: build.id, sync: fit.workspace })
  return { commit, token, request: fit.request, resources: fit.resources }
}

async function resolveCommit (ctx: RunContext, stream: Stream): Promise<string | Final> {
  const { deps, build } = ctx
  await deps.logs.note(build.id, `resolving ${build.request.commit ?? stream.config.ref} in ${stream.config.url}`)
  // Checked again at each build: a name may resolve elsewhere since the stream was registered.
  const refusal = await configUrlRefusal(stream.config.url, urlPolicy(deps.config))
  if (refusal) return failed('config_unavailable', `config repository refused: ${refusal}`)
  try {
    await deps.mirror.sync(stream.config.url, deps.dataDir.mirror(stream.name))
    // A retried build (an earlier attempt recorded the commit) builds the same inputs again.
    return await deps.mirror.resolve(deps.dataDir.mirror(stream.name), stream.config.ref, build.request.commit ?? build.configCommit)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return failed('config_unavailable', `config repository: ${err.message}`)
  }
}

/**
 * Checks the stream's resources against the engine, and brings the workdir
 * in step with the store (the record of what exists).
 * When the store's latest build lacks an image this build asks for (a
 * platform added since), an unchanged outcome would not give the caller
 * that image: the build is forced, so it makes a complete new one.
 */
async function fitAndSync (ctx: RunContext, stream: Stream, arch: string) {
  const { deps: { logs, publisher }, build, executor } = ctx
  const capacity = await executor.capacity()
  const workdir = workdirOf(ctx)
  const problems = resourceProblems(stream.resources, capacity)
  if (problems.length) return failed('invalid_settings', `the stream's settings do not fit the Docker engine: ${describeProblems(problems)}`)
  const resources = effectiveResources(stream.resources, capacity)
  await mkdir(workdir, { recursive: true })
  let sync
  try {
    sync = await syncWorkdir(publisher, stream.name, workdir, arch)
  } catch (err) {
    return failed('infrastructure', `reading the artifact store failed: ${(err as Error).message}`)
  }
  const { version } = build.request
  if (version !== undefined && sync.publishedArch.has(version)) {
    return failed('invalid_settings', `build ${version} is already in the artifact store (${arch}): a build's version must be new`)
  }
  if (sync.removed.length) await logs.note(build.id, `removed unpublished builds from the workdir: ${sync.removed.join(', ')}`)
  if (sync.synced) await logs.note(build.id, `workdir synced from the artifact store: builds/latest is ${sync.synced}`)
  const lacking = sync.latest ? missingImages(sync.latest.images, requiredImages(recipeOf(stream), platformsOf(build, stream))) : []
  const { workspace } = sync
  if (!lacking.length || build.request.force) return { request: build.request, resources, workspace }
  await logs.note(build.id, `the latest published build ${sync.latest!.buildid} has no ${lacking.join(', ')} image: ` +
    'building anew (--force) so that this build has every image it asks for')
  return { request: { ...build.request, force: true }, resources, workspace }
}
