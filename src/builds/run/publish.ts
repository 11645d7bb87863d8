import { PublishError } from '../../artifacts/publisher.js'
import type { Meta } from '../../cosa/meta.js'
import type { Final } from '../lifecycle.js'
import { DEFAULT_KEEP, type PostedResult } from '../model.js'
import { failed, workdirOf, type RunContext } from './context.js'

// The step after a decision to publish: the artifact store gets every file of
// the build, meta.json last (Publisher). A build counts only once the store
// has it: until then it is not `succeeded`. When cosa found nothing changed
// but the store lacked that build (its first publish failed), storing it now
// makes it new to every reader of the store, so the build is `succeeded`,
// not `unchanged`.

export async function publish (ctx: RunContext, posted: PostedResult, exitCode: number): Promise<Final> {
  const { deps: { store, logs, publisher }, build, stream } = ctx
  const { cosaBuildId: id, arch } = posted.result
  await logs.note(build.id, `publishing build ${id} (${arch}) to the artifact store`)
  try {
    const out = await publisher.publish({
      stream: build.stream,
      buildId: build.id,
      workdir: workdirOf(ctx),
      arch,
      meta: JSON.parse(posted.metaJson) as Meta,
      metaJson: posted.metaJson,
      keep: stream?.keep ?? DEFAULT_KEEP,
      pinned: await store.pins.pinnedBuilds(build.stream)
    })
    await logs.note(build.id, out.stored
      ? `published ${out.artifacts.length} artifacts of ${id}` + (out.pruned.length ? `; retention pruned ${out.pruned.join(', ')}` : '')
      : `build ${id} was already in the store`)
    const state = posted.outcome === 'built' || out.stored ? 'succeeded' : 'unchanged'
    return { state, exitCode, result: { ...posted.result, artifacts: out.artifacts, files: out.files } }
  } catch (err) {
    if (!(err instanceof PublishError)) throw err
    return failed('publish_failed', `publishing build ${id} failed: ${err.message}`, exitCode)
  }
}
