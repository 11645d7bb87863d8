import { execa } from 'execa'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { S3Client } from '@aws-sdk/client-s3'
import pg from 'pg'
import type { Test } from 'tap'
import { instanceOwner, reapOwned, tempDir } from './helpers.js'
import { startPostgres, type PostgresServer } from './postgres-server.js'
import { S3RVER_CREDENTIALS, startS3, type S3Server } from './s3-server.js'
import { startServer, type Server } from './server-process.js'

// Replicas of the service (separate processes, test/server-process.ts) on one
// PostgreSQL and one s3rver, sharing the Docker engine and one data
// directory (issue #14). Whatever containers and volumes the installation
// leaves are removed at teardown (reapOwned).

export interface ReplicaCluster {
  pg: PostgresServer
  /** The database the replicas share. */
  url: string
  /** A connection of the test's own to that database. */
  db: pg.Client
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
  const db = new pg.Client(url)
  // The server may be restarted under the test's connection: its error must not end the test.
  db.on('error', () => undefined)
  await db.connect()
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
