import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, rename, rm, stat, truncate } from 'node:fs/promises'
import { dirname } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import type { ReadableStream as WebStream } from 'node:stream/web'
import { call, type Api, type Build } from './client.js'
import { CliError, EXIT } from './exit.js'

// An artifact to a file: written to FILE.part, resumed from it with Range
// (If-Range: the ETag, so a changed file restarts), and renamed into place
// only once its sha256 is the one the build's result lists.

const ATTEMPTS = 5

function artifactOf (build: Build, name: string) {
  if (!build.result) {
    throw new CliError(`build ${build.id} is ${build.state} and has no artifacts: only succeeded and unchanged builds have them`, EXIT.api)
  }
  const artifact = build.result.artifacts.find((a) => a.name === name)
  if (!artifact) {
    const names = build.result.artifacts.map((a) => a.name).join(', ')
    throw new CliError(`build ${build.id} has no artifact ${JSON.stringify(name)}: it has ${names}`, EXIT.api)
  }
  return artifact
}

const sizeOf = async (path: string) => (await stat(path).catch(() => undefined))?.size ?? 0

async function sha256Of (path: string) {
  const hash = createHash('sha256')
  await pipeline(createReadStream(path), hash)
  return hash.digest('hex')
}

/** Appends what the server sends from `have` on; false when the connection dropped part-way. */
async function fetchRest (api: Api, build: Build, name: string, part: string, have: number, etag: string) {
  const { response } = await call(api, `download ${name} of build ${build.id}`, () =>
    api.client.GET('/v1/builds/{id}/artifacts/{name}', {
      params: { path: { id: build.id, name } },
      headers: have > 0 ? { range: `bytes=${have}-`, 'if-range': etag } : {},
      parseAs: 'stream'
    }))
  const served = response.headers.get('etag')
  if (served !== etag) {
    throw new CliError(`the server's ${name} has ETag ${served}, the build lists sha256 ${etag}: refusing it; ` +
      'the artifact changed in the store, ask the server\'s operator', EXIT.unverified)
  }
  // 200 to a range: the whole file again.
  if (response.status !== 206) await truncate(part, 0).catch(() => undefined)
  const body = Readable.fromWeb(response.body as unknown as WebStream<Uint8Array>)
  return pipeline(body, createWriteStream(part, { flags: 'a' })).then(() => true, (err: NodeJS.ErrnoException) => {
    // A file system error is ours to report; anything else is the connection breaking off.
    if (err.syscall) throw new CliError(`cannot write ${part}: ${err.message}`, EXIT.failed)
    return false
  })
}

/** Downloads artifact `name` of `build` to `target`; returns its size. */
export async function downloadArtifact (api: Api, build: Build, name: string, target: string) {
  const artifact = artifactOf(build, name)
  const part = `${target}.part`
  const etag = `"${artifact.sha256}"`
  await mkdir(dirname(target), { recursive: true })
  if (await sizeOf(part) > artifact.size) await truncate(part, 0)
  for (let attempt = 0; ; attempt++) {
    const have = await sizeOf(part)
    if (have === artifact.size) break
    if (attempt === ATTEMPTS) {
      throw new CliError(`the download of ${name} kept breaking off; run the command again to resume from ${part}`, EXIT.api)
    }
    await fetchRest(api, build, name, part, have, etag)
  }
  const sha256 = await sha256Of(part)
  if (sha256 !== artifact.sha256) {
    await rm(part, { force: true })
    throw new CliError(`${name}: the download's sha256 is ${sha256}, but build ${build.id} lists ${artifact.sha256}; ` +
      `removed ${part}: run the command again to download it anew`, EXIT.unverified)
  }
  await rename(part, target)
  return artifact.size
}
