import { call, type Api, type Build } from './client.js'
import type { Io } from './output.js'
import { progressOf } from './output.js'
import { watch } from './watch.js'

// Ctrl-C while watching stops the watching, not the build, unless asked:
// a CI job that is interrupted should not take the build down with it by surprise.

export interface WaitOptions {
  follow: boolean
  cancelOnInterrupt: boolean
}

const resumeHint = (id: string) =>
  `stopped watching build ${id}; it goes on. Watch it again: cosa-buildd build log ${id} -f ` +
  `(or build get ${id}); cancel it: cosa-buildd build cancel ${id}\n`

/** The build once it has ended, or undefined after Ctrl-C stopped the watching. */
export async function waitForBuild (api: Api, io: Io, build: Build, opts: WaitOptions): Promise<Build | undefined> {
  const stop = new AbortController()
  let cancelling = false
  const onInterrupt = () => {
    if (!opts.cancelOnInterrupt || cancelling) return stop.abort()
    cancelling = true
    io.err.write(`cancelling build ${build.id} (Ctrl-C again stops watching)\n`)
    call(api, `cancel build ${build.id}`, () => api.client.POST('/v1/builds/{id}/cancel', { params: { path: { id: build.id } } }))
      .catch((err: Error) => { io.err.write(`error: ${err.message}\n`) })
  }
  process.on('SIGINT', onInterrupt)
  try {
    return await watch(api, build, { follow: opts.follow, out: progressOf(io), notes: io.err, signal: stop.signal })
  } catch (err) {
    if (!stop.signal.aborted) throw err
    io.err.write(resumeHint(build.id))
    return undefined
  } finally {
    process.off('SIGINT', onInterrupt)
  }
}
