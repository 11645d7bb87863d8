import { setTimeout as sleep } from 'node:timers/promises'
import { call, isUnreachable, refused, unreachable, type Api, type Build } from './client.js'
import { CliError, EXIT, isFinal } from './exit.js'
import { describeState } from './output.js'

// Watching a build to its end: polling its state (with If-None-Match), or
// streaming its log and resuming by byte offset after a dropped connection.

const POLL_MS = 1000
/** How long the server may stay unreachable while a build is watched (a restart, say). */
const UNREACHABLE_MS = 60_000

type Progress = NodeJS.WritableStream & { isTTY?: boolean }

/** Runs fn again while the server is unreachable, up to UNREACHABLE_MS. */
async function retrying<T> (fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
  const deadline = Date.now() + UNREACHABLE_MS
  for (;;) {
    try {
      return await fn()
    } catch (err) {
      if (signal.aborted || !isUnreachable(err) || Date.now() > deadline) throw err
      await sleep(POLL_MS, undefined, { signal })
    }
  }
}

export const getBuild = async (api: Api, id: string) =>
  (await call(api, `get build ${id}`, () => api.client.GET('/v1/builds/{id}', { params: { path: { id } } }))).data

/** On a terminal one line rewritten in place; elsewhere one plain line per change. */
export function statusLine (stream: Progress) {
  const tty = stream.isTTY === true
  let last = ''
  return {
    update (build: Build) {
      const text = describeState(build)
      if (tty) {
        const seconds = Math.floor((Date.now() - Date.parse(build.createdAt)) / 1000)
        const elapsed = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`
        stream.write(`\r\x1b[K${text}  ${elapsed}`)
      } else if (text !== last) {
        stream.write(text + '\n')
      }
      last = text
    },
    end () { if (tty && last) stream.write('\n') }
  }
}

/** The build, or undefined while it has not changed since `etag`. */
async function pollOnce (api: Api, id: string, etag: string | undefined, signal: AbortSignal) {
  let answer
  try {
    answer = await api.client.GET('/v1/builds/{id}', {
      params: { path: { id } }, headers: etag ? { 'if-none-match': etag } : {}, signal
    })
  } catch (err) {
    throw signal.aborted ? err : unreachable(api, err)
  }
  const { data, error, response } = answer
  if (response.status === 304) return undefined
  if (!response.ok || !data) throw refused(`get build ${id}`, response, error)
  return { build: data, etag: response.headers.get('etag') ?? undefined }
}

async function poll (api: Api, build: Build, progress: Progress, signal: AbortSignal) {
  const status = statusLine(progress)
  let current = { build, etag: undefined as string | undefined }
  status.update(build)
  try {
    while (!isFinal(current.build.state)) {
      await sleep(POLL_MS, undefined, { signal })
      current = await retrying(() => pollOnce(api, build.id, current.etag, signal), signal) ?? current
      status.update(current.build)
    }
  } finally {
    status.end()
  }
  return current.build
}

/**
 * Streams the log from `offset` once; returns the new offset. Following, a
 * dropped connection just ends it early (the caller resumes from there).
 */
export async function streamLog (api: Api, id: string, offset: number, follow: boolean, out: NodeJS.WritableStream,
  signal?: AbortSignal) {
  const { response } = await call(api, `read the log of build ${id}`, () => api.client.GET('/v1/builds/{id}/log', {
    params: { path: { id }, query: { offset, follow: follow ? 'true' : 'false' } }, parseAs: 'stream', signal
  }))
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      out.write(chunk)
      offset += chunk.length
    }
  } catch (err) {
    if (signal?.aborted) throw err
    if (!follow) throw new CliError(`the log of build ${id} broke off at byte ${offset}: run the command again`, EXIT.api)
  }
  return offset
}

/** Follows the log until the build has ended and every byte is out; returns the final build. */
async function follow (api: Api, build: Build, out: NodeJS.WritableStream, notes: NodeJS.WritableStream, signal: AbortSignal) {
  let offset = 0
  for (;;) {
    offset = await retrying(() => streamLog(api, build.id, offset, true, out, signal), signal)
    const current = await retrying(() => getBuild(api, build.id), signal)
    if (isFinal(current.state)) {
      // The connection may have dropped after the last poll: collect what is left.
      await retrying(() => streamLog(api, build.id, offset, false, out, signal), signal)
      return current
    }
    notes.write(`(the log connection closed at byte ${offset}; resuming)\n`)
    await sleep(POLL_MS, undefined, { signal })
  }
}

export interface WatchOptions {
  follow: boolean
  /** Where the log or the status goes. */
  out: Progress
  /** Where notes on the connection go. */
  notes: NodeJS.WritableStream
  signal: AbortSignal
}

/** The build once it has ended; an abort of `signal` rejects with its reason. */
export function watch (api: Api, build: Build, opts: WatchOptions) {
  return opts.follow
    ? follow(api, build, opts.out, opts.notes, opts.signal)
    : poll(api, build, opts.out, opts.signal)
}
