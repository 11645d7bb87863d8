import { execa } from 'execa'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3'
import pg from 'pg'
import type { Test } from 'tap'
import { instanceOwner, reapOwned, tempDir } from './helpers.js'
import { startPostgres, type PostgresServer } from './postgres-server.js'
import { S3RVER_CREDENTIALS, startS3, type S3Server } from './s3-server.js'
import { api, sleep, startServer, until, type Server } from './server-process.js'

// Replicas of the service (separate processes, test/server-process.ts) on one
// PostgreSQL and one s3rver, sharing the Docker engine and one data
// directory (issue #14). Whatever containers and volumes the installation
// leaves are removed at teardown (reapOwned).

export interface ReplicaCluster {
  pg: PostgresServer
  /** The database the replicas share. */
  url: string
  /** Connections of the test's own to that database. */
  db: pg.Pool
  s3: S3Server
  /** A client of the s3rver, for reading builds.json. */
  raw: S3Client
  dataDir: string
  replicas: Record<string, Server>
  /** Starts (or starts again) the replica `id`. */
  start(id: string): Promise<Server>
  /** The installation's owner label (its instance id). */
  owner(): Promise<string>
}

export interface ClusterOptions {
  maxConcurrent: number
  leaseSeconds: number
  /** The configuration file's content (a sweep every second by default). */
  config?: Record<string, unknown>
  env?: Record<string, string>
}

export async function startCluster (t: Test, opts: ClusterOptions): Promise<ReplicaCluster> {
  const pgServer = await startPostgres(t)
  const url = await pgServer.createDatabase('replicas')
  // A pool: it connects again after the server restarted under it.
  const db = new pg.Pool({ connectionString: url, max: 2 })
  db.on('error', () => undefined)
  t.teardown(() => db.end().catch(() => undefined))
  const s3 = await startS3(t)
  const raw = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3RVER_CREDENTIALS })
  t.teardown(() => raw.destroy())
  const dataDir = await tempDir(t, 'cosa-rep-')
  reapOwned(t, instanceOwner(dataDir))
  const configFile = join(await tempDir(t), 'config.json')
  // A short lease and a sweep every second keep the tests short.
  await writeFile(configFile, JSON.stringify(opts.config ?? { builds: { reconcileIntervalMs: 1000 } }))
  const env = (id: string) => ({
    COSA_BUILDD_CONFIG: configFile,
    COSA_BUILDD_DATABASE_URL: url,
    COSA_BUILDD_REPLICA_ID: id,
    COSA_BUILDD_LEASE_SECONDS: String(opts.leaseSeconds),
    COSA_BUILDD_STORE: 's3',
    COSA_BUILDD_S3_BUCKET: s3.bucket,
    COSA_BUILDD_S3_ENDPOINT: s3.endpoint,
    COSA_BUILDD_S3_PATH_STYLE: '1',
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    ...opts.env
  })
  const replicas: Record<string, Server> = {}
  return {
    pg: pgServer,
    url,
    db,
    s3,
    raw,
    dataDir,
    replicas,
    start: async (id) => (replicas[id] = await startServer(t, dataDir, opts.maxConcurrent, { env: env(id) })),
    owner: instanceOwner(dataDir)
  }
}

/** build id -> how many containers it has, for the installation `owner`. */
export async function containersByBuild (owner: string) {
  const { stdout } = await execa('docker', ['ps', '-a', '--filter', `label=io.cosa-buildd.owner=${owner}`,
    '--format', '{{.Label "io.cosa-buildd.build-id"}}'])
  const byBuild = new Map<string, number>()
  for (const build of stdout.split('\n').filter(Boolean)) byBuild.set(build, (byBuild.get(build) ?? 0) + 1)
  return byBuild
}

export const TERMINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']

export interface BuildView {
  id: string
  stream: string
  state: string
  message?: string
  containerId?: string
  result?: { cosaBuildId: string }
}

export const buildStates = (server: Server, ids: string[]) =>
  Promise.all(ids.map(async (id) => (await api(server, `/v1/builds/${id}`)).json() as BuildView))

/** Submits one build (forced) to each of `streams`, alternating over `servers`; waits until each runs and has logged "tick 2". */
export async function startRunning (t: Test, servers: Server[], streams: string[]) {
  const ids: string[] = []
  for (const [i, stream] of streams.entries()) {
    const sub = await api(servers[i % servers.length]!, `/v1/streams/${stream}/builds`, { method: 'POST', body: { force: true } })
    t.equal(sub.status, 202, `submit ${stream}`)
    ids.push(sub.json().id)
  }
  await until('every build to run and log "tick 2"', 5 * 60_000, async () => {
    for (const b of await buildStates(servers[0]!, ids)) {
      if (TERMINAL.includes(b.state)) throw new Error(`build ${b.id} ended early: ${b.state} ${b.message ?? ''}`)
      if (!b.containerId || !/^tick 2$/m.test((await api(servers[0]!, `/v1/builds/${b.id}/log`)).text)) return false
    }
    return true
  })
  return ids
}

/** Waits until every build has ended; their final views. */
export const allEnded = (server: Server, ids: string[]) => until('every build to end', 8 * 60_000, async () => {
  const all = await buildStates(server, ids)
  return all.every((b) => TERMINAL.includes(b.state)) && all
})

/** Each build's cosa build is listed exactly once in its stream's builds.json. */
export async function checkBuildsJson (t: Test, cluster: ReplicaCluster, finals: BuildView[]) {
  for (const b of finals) {
    const object = await cluster.raw.send(new GetObjectCommand({ Bucket: cluster.s3.bucket, Key: `${b.stream}/builds/builds.json` }))
    const listed = (JSON.parse(await object.Body!.transformToString()).builds as Array<{ id: string }>).filter((e) => e.id === b.result?.cosaBuildId)
    t.equal(listed.length, 1, `build ${b.id}: exactly one builds.json entry (${b.result?.cosaBuildId})`)
  }
}

/** Each "tick N" line of tickRecipe(ticks) is in each build's log exactly once. */
export async function eachTickOnce (t: Test, server: Server, ids: string[], ticks: number, why: string) {
  for (const id of ids) {
    const log = (await api(server, `/v1/builds/${id}/log`)).text
    const counts = Array.from({ length: ticks }, (_, i) => log.split('\n').filter((l) => l === `tick ${i + 1}`).length)
    t.same(counts, Array(ticks).fill(1), `build ${id}: each tick once (${why})`)
  }
}

/** Who holds each running build's lease, and under which token. */
export async function leases (db: pg.Pool) {
  const { rows } = await db.query("SELECT id, lease_owner, lease_token FROM builds WHERE state = 'running'")
  return new Map(rows.map((r: { id: string, lease_owner: string, lease_token: number }) => [r.id, { owner: r.lease_owner, token: Number(r.lease_token) }]))
}

/** Looks at the installation's containers every 500 ms until stopped: the most each build had at once. */
export function sampleContainers (t: Test, owner: string) {
  const maxPerBuild = new Map<string, number>()
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      try {
        for (const [build, n] of await containersByBuild(owner)) maxPerBuild.set(build, Math.max(maxPerBuild.get(build) ?? 0, n))
      } catch {}
      await sleep(500)
    }
  })()
  const stop = async () => {
    sampling = false
    await sampler
    return maxPerBuild
  }
  t.teardown(stop)
  return { stop }
}
