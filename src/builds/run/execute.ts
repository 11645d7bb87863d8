import { existsSync } from 'node:fs'
import { bootTestStep, renderScript } from '../../cosa/recipe.js'
import { containerName, containerSpec, MOUNTS } from '../../runner/container-spec.js'
import { EngineError } from '../../runner/docker-engine.js'
import type { Final } from '../lifecycle.js'
import type { Stream } from '../model.js'
import { failed, platformsOf, recipeOf, type RunContext } from './context.js'
import type { Prepared } from './prepare.js'

// The second step: the container, created from the rendered recipe and the
// configuration, recorded on the build, and started.

const HOST_DEVICES = ['/dev/kvm', '/dev/fuse']

/** The started container's id; a final state; or undefined when the build stopped running meanwhile. */
export async function execute (ctx: RunContext, stream: Stream, prepared: Prepared): Promise<string | Final | undefined> {
  const { deps: { engine, lifecycle, config }, build } = ctx
  const created = await create(ctx, stream, prepared)
  if (typeof created !== 'string') return created
  if (!await lifecycle.record(build.id, { containerId: created })) {
    await engine.remove(created)
    return undefined
  }
  try {
    await engine.start(created)
  } catch (err) {
    if (!(err instanceof EngineError) || err.kind !== 'refused') throw err
    await engine.remove(created)
    return failed('infrastructure',
      `the Docker engine refused to start the build container with the ${config.builds.securityProfile} ` +
      `security profile: ${err.message}`)
  }
  return created
}

async function create (ctx: RunContext, stream: Stream, prepared: Prepared): Promise<string | Final> {
  const { engine } = ctx.deps
  try {
    return await engine.create(specOf(ctx, stream, prepared))
  } catch (err) {
    if (err instanceof EngineError && err.kind === 'invalid') {
      return failed('invalid_settings', `the Docker engine refused the stream's settings: ${err.message}`)
    }
    // The name is the build's: a container of that name is this build's
    // own, created by an earlier attempt that did not record it.
    if (!(err instanceof EngineError && err.kind === 'conflict')) throw err
    const existing = await engine.inspect(containerName(ctx.build.id))
    if (!existing) throw err
    return existing.id
  }
}

function specOf (ctx: RunContext, stream: Stream, prepared: Prepared) {
  const { deps: { config, dataDir, owner }, build } = ctx
  return containerSpec({
    buildId: build.id,
    stream: stream.name,
    owner,
    image: stream.image,
    script: renderScript({
      recipe: recipeOf(stream),
      url: `file://${MOUNTS.config}`,
      ref: stream.config.ref,
      commit: prepared.commit,
      request: prepared.request,
      platforms: platformsOf(build, stream),
      bootTest: bootTestStep(stream.bootTest, recipeOf(stream), platformsOf(build, stream))
    }),
    resultToken: prepared.token,
    env: stream.secrets,
    resultUrl: config.builds.resultUrl,
    workdir: prepared.workdir,
    mirror: dataDir.mirror(stream.name),
    apiSocketDir: dataDir.apiSocketDir,
    profile: config.builds.securityProfile,
    networkMode: stream.networkMode ?? config.builds.networkMode,
    devices: HOST_DEVICES.filter((d) => existsSync(d)),
    ...prepared.resources,
    stopGraceSeconds: config.builds.stopGraceSeconds,
    log: { fileBytes: config.builds.logFileBytes, files: config.builds.logFiles }
  })
}
