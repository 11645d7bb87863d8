import type { Api, Build, Stream } from './client.js'

// What people read: one build, a list of builds, streams. --json prints the
// API's own objects instead.

export interface Io {
  out: NodeJS.WritableStream
  err: NodeJS.WritableStream & { isTTY?: boolean }
  json: boolean
}

/** Where progress goes: stderr when stdout carries JSON. */
export const progressOf = (io: Io): NodeJS.WritableStream & { isTTY?: boolean } =>
  io.json ? io.err : io.out as NodeJS.WritableStream & { isTTY?: boolean }

export const printJson = (io: Io, value: unknown) => io.out.write(JSON.stringify(value, null, 2) + '\n')

export function describeState (build: Build) {
  if (build.state === 'queued' && build.queuePosition !== undefined) return `queued, position ${build.queuePosition}`
  if (build.state === 'failed') {
    const step = build.failedStep ? ` in ${build.failedStep}` : ''
    return `failed${step} (${build.reason ?? 'unknown reason'})${build.message ? `: ${build.message}` : ''}`
  }
  if (build.state === 'running' && build.phase) return `running: ${build.phase}`
  return build.state
}

export function printBuild (io: Io, api: Api, build: Build) {
  if (io.json) return printJson(io, build)
  const lines = [`build ${build.id} of ${build.stream}: ${describeState(build)}`]
  lines.push(...describeAttempts(build))
  if (build.bootTest) lines.push(`  ${describeBootTest(build.bootTest)}, console ${api.link(`/v1/builds/${build.id}/boot-test/console.txt`)}`)
  if (build.result) {
    lines.push(`  cosa build ${build.result.cosaBuildId} (${build.result.arch})${build.pinned ? ', pinned' : ''}`)
    for (const a of build.result.artifacts) {
      lines.push(`  ${a.name}: ${a.url ? api.link(a.url) : a.path}  sha256 ${a.sha256}`)
    }
  }
  // A multi-arch build: each arch, and the artifacts of those after the primary (whose are above).
  for (const [i, arch] of (build.arches ?? []).entries()) {
    lines.push(`  ${describeArch(arch)}`)
    for (const a of i === 0 ? [] : arch.result?.artifacts ?? []) {
      lines.push(`    ${a.name}: ${a.url ? api.link(a.url) : a.path}  sha256 ${a.sha256}`)
    }
  }
  io.out.write(lines.join('\n') + '\n')
}

/** A retried build's attempts, one line each (a build that ran once has nothing to add). */
function describeAttempts (build: Build) {
  const attempts = build.attempts ?? []
  const retried = attempts.length > 1 || (attempts.length > 0 && (build.state === 'queued' || build.state === 'running'))
  if (!retried) return []
  return attempts.map((a, i) => {
    const how = a.state === 'failed' ? `failed${a.failedStep ? ` in ${a.failedStep}` : ''} (${a.reason ?? 'unknown reason'})` : a.state
    return `  attempt ${i + 1} on ${a.engine ?? 'no engine'}: ${how}, ${a.startedAt ?? '?'} – ${a.endedAt}${a.message ? `: ${a.message}` : ''}`
  })
}

function describeArch (a: NonNullable<Build['arches']>[number]) {
  const why = a.state === 'waiting' ? a.waitingFor : a.reason
  const took = a.startedAt && a.finishedAt ? `, ${((Date.parse(a.finishedAt) - Date.parse(a.startedAt)) / 1000).toFixed(1)} s` : ''
  return `${a.arch}: ${a.state}${why ? ` (${why})` : ''}${a.engine ? ` on ${a.engine}` : ''}${took}${a.message ? `: ${a.message}` : ''}`
}

function describeBootTest (b: NonNullable<Build['bootTest']>) {
  const why = b.reason ? ` (${b.reason}${b.failedUnits.length ? `: ${b.failedUnits.join(', ')}` : ''})` : ''
  return `boot test ${b.status}${why}${b.accel ? `, ${b.accel} ${(b.durationMs / 1000).toFixed(1)} s` : ''}`
}

export function printBuilds (io: Io, builds: Build[]) {
  if (io.json) return printJson(io, { builds })
  for (const b of builds) io.out.write(`${b.id}  ${b.stream}  ${describeState(b)}  ${b.createdAt}\n`)
}

export function printStream (io: Io, stream: Stream) {
  if (io.json) return printJson(io, stream)
  const latest = stream.latestBuild ? `latest build ${stream.latestBuild.id} (${stream.latestBuild.result?.cosaBuildId})` : 'no build yet'
  io.out.write(`${stream.name}: ${stream.config.url} ${stream.config.ref}, image ${stream.image}, ` +
    `platforms ${stream.platforms.join(',')}; ${latest}\n`)
}
