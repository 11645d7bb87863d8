import { bootTestStep, renderScript } from '../../cosa/recipe.js'
import { EngineError, JOB_PATHS, type BuildJob } from '../../executor/executor.js'
import type { Final } from '../lifecycle.js'
import type { Stream } from '../model.js'
import { failed, platformsOf, recipeOf, type RunContext } from './context.js'
import type { Prepared } from './prepare.js'
import { secondaryArch } from './arches.js'

// The second step: the build's job, made from the rendered recipe and the
// configuration, recorded on the build, and started on its engine.

/** The started job's id; a final state; or undefined when the build stopped running meanwhile. */
export async function execute (ctx: RunContext, stream: Stream, prepared: Prepared): Promise<string | Final | undefined> {
  const { deps: { lifecycle, config }, build, executor } = ctx
  const created = await create(ctx, stream, prepared)
  if (typeof created !== 'string') return created
  if (!await lifecycle.record(build.id, { containerId: created })) {
    await executor.remove(created)
    return undefined
  }
  try {
    await executor.start(created)
  } catch (err) {
    if (!(err instanceof EngineError) || err.kind !== 'refused') throw err
    await executor.remove(created)
    return failed('infrastructure',
      `the engine ${executor.name} refused to start the build with the ${config.builds.securityProfile} ` +
      `security profile: ${err.message}`)
  }
  return created
}

async function create (ctx: RunContext, stream: Stream, prepared: Prepared): Promise<string | Final> {
  try {
    return await ctx.executor.create(jobOf(ctx, stream, prepared))
  } catch (err) {
    if (err instanceof EngineError && err.kind === 'invalid') {
      return failed('invalid_settings', `the engine ${ctx.executor.name} refused the stream's settings: ${err.message}`)
    }
    throw err
  }
}

function jobOf (ctx: RunContext, stream: Stream, prepared: Prepared): BuildJob {
  const { deps: { config }, build } = ctx
  return {
    buildId: build.id,
    stream: stream.name,
    arch: secondaryArch(build),
    image: stream.image,
    script: renderScript({
      recipe: recipeOf(stream),
      url: `file://${JOB_PATHS.config}`,
      ref: stream.config.ref,
      commit: prepared.commit,
      request: prepared.request,
      platforms: platformsOf(build, stream),
      bootTest: bootTestStep(stream.bootTest, recipeOf(stream), platformsOf(build, stream))
    }),
    resultToken: prepared.token,
    env: stream.secrets,
    resources: prepared.resources,
    profile: config.builds.securityProfile,
    network: stream.networkMode ?? config.builds.networkMode
  }
}
