import { spawn, execFile } from 'node:child_process'
import { once } from 'node:events'
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from './helpers.js'

// A PostgreSQL 15 of its own for a test file, from Debian's `postgresql`
// package (scripts/setup-host.sh): initdb into a temp dir, its own port on
// 127.0.0.1, its socket in that dir, stopped by its PID. PostgreSQL refuses to
// run as root, so as root (CI) it runs as `nobody`; setpriv execs, so the PID
// is the server's own.

const BIN = process.env.COSA_BUILDD_PG_BIN ?? '/usr/lib/postgresql/15/bin'
export const PG_PASSWORD = 'pg-test-secret-0b9f'

export interface PostgresServer {
  port: number
  /** A new, empty database on this server, and its URL (with the password). */
  createDatabase(name: string): Promise<string>
  /** `pg_ctl restart -m fast` (connections are cut, the server starts again); resolves once it accepts connections. */
  restart(): Promise<void>
  /** Stops the server (`-m fast`), waits `ms`, starts it again; resolves once it accepts connections. */
  outage(ms: number): Promise<void>
  close(): Promise<void>
}

type Teardown = { teardown(fn: () => unknown): void }

async function asServerUser (dir: string) {
  if (process.getuid?.() !== 0) return []
  const nobody = (await promisify(execFile)('id', ['-u', 'nobody'])).stdout.trim()
  const nogroup = (await promisify(execFile)('id', ['-g', 'nobody'])).stdout.trim()
  await chown(dir, Number(nobody), Number(nogroup))
  return ['/usr/bin/setpriv', `--reuid=${nobody}`, `--regid=${nogroup}`, '--clear-groups', '--']
}

function run (argv: string[]) {
  return promisify(execFile)(argv[0]!, argv.slice(1), { env: { ...process.env, LC_ALL: 'C.UTF-8' } })
}

async function ready (port: number, child: ReturnType<typeof spawn>) {
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}`)
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: PG_PASSWORD, database: 'postgres' })
    try {
      await client.connect()
      await client.end()
      return
    } catch (err) {
      await client.end().catch(() => undefined)
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

export async function startPostgres (t?: Teardown): Promise<PostgresServer> {
  const dir = await mkdtemp(join(tmpdir(), 'cosa-buildd-pg-'))
  const as = await asServerUser(dir)
  const data = join(dir, 'data')
  const pwfile = join(dir, 'pw')
  await writeFile(pwfile, PG_PASSWORD, { mode: 0o644 })
  await run([...as, join(BIN, 'initdb'), '-D', data, '-U', 'postgres', '--pwfile', pwfile, '--auth-host=scram-sha-256',
    '--auth-local=trust', '-E', 'UTF8', '--no-sync', '--no-instructions'])
  const port = await freePort()
  // Durability is not what these tests measure.
  const options = ['-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200']
  const child = spawn(as[0] ?? join(BIN, 'postgres'), [...as.slice(1), ...(as.length ? [join(BIN, 'postgres')] : []),
    '-D', data, ...options],
  { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr!.on('data', (chunk: Buffer) => { log = (log + chunk.toString()).slice(-4000) })
  // Once restarted by pg_ctl, the server is no longer this process's child:
  // pg_ctl stops it, by the PID in its data directory.
  let restarted = false
  const pgCtl = (...args: string[]) => run([...as, join(BIN, 'pg_ctl'), ...args, '-D', data, '-w', '-t', '60'])
  const serverLog = join(dir, 'server.log')
  let closed: Promise<void> | undefined
  const close = () => (closed ??= (async () => {
    if (child.exitCode === null) {
      child.kill('SIGINT') // fast shutdown
      await once(child, 'exit')
    }
    if (restarted) await pgCtl('stop', '-m', 'fast').catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  })())
  t?.teardown(close)
  try {
    await ready(port, child)
  } catch (err) {
    await close()
    throw new Error(`PostgreSQL did not start: ${(err as Error).message}\n${log}`)
  }
  const url = (db: string) => `postgres://postgres:${PG_PASSWORD}@127.0.0.1:${port}/${db}`
  return {
    port,
    createDatabase: async (name) => {
      const client = new pg.Client(url('postgres'))
      await client.connect()
      try {
        await client.query(`CREATE DATABASE "${name}"`)
      } finally {
        await client.end()
      }
      return url(name)
    },
    restart: async () => {
      restarted = true
      await pgCtl('restart', '-m', 'fast', '-l', serverLog)
    },
    outage: async (ms) => {
      restarted = true
      await pgCtl('stop', '-m', 'fast')
      await new Promise((resolve) => setTimeout(resolve, ms))
      await pgCtl('start', '-l', serverLog, '-o', options.join(' '))
    },
    close
  }
}
