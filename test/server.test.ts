import { execa } from 'execa'
import { readlink } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, tempDir } from './helpers.js'

// The process itself: exposure rules, listening, and a graceful SIGTERM.

// The child runs with this test's own loader (process.execArgv), so the
// coverage tap collects from it maps onto the sources like the rest.
const server = (env: Record<string, string>) =>
  execa(process.execPath, [...process.execArgv, join(ROOT, 'src/server.ts')], {
    env: { COSA_BUILDD_LOG_LEVEL: 'info', ...env },
    reject: false,
    all: true
  })

t.test('without tokens it refuses to listen beyond loopback', async (t) => {
  const r = await server({ COSA_BUILDD_HOST: '0.0.0.0', COSA_BUILDD_DATA_DIR: await tempDir(t) })
  t.equal(r.exitCode, 1)
  t.match(r.all, /refusing to listen on 0\.0\.0\.0 without tokens/)
})

t.test('a bad setting stops the start with its name', async (t) => {
  const r = await server({ COSA_BUILDD_PORT: 'eighty', COSA_BUILDD_DATA_DIR: await tempDir(t) })
  t.equal(r.exitCode, 1)
  t.match(r.all, /invalid configuration: port \(COSA_BUILDD_PORT\)/)
})

t.test('it serves on loopback, says it is open, warns of unknown variables, and stops on SIGTERM', async (t) => {
  const child = server({ COSA_BUILDD_PORT: '0', COSA_BUILDD_DATA_DIR: await tempDir(t), COSA_BUILDD_MAX_CONCURENT: '3' })
  let out = ''
  const url = await new Promise<string>((resolve, reject) => {
    child.all!.on('data', (d) => {
      out += d
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
      if (m) resolve(m[1]!)
    })
    setTimeout(() => reject(new Error(`no listen line: ${out}`)), 20_000).unref()
  })
  t.match(out, /no tokens configured: listening on loopback only/)
  t.match(out, /unknown environment variable COSA_BUILDD_MAX_CONCURENT is ignored \(did you mean COSA_BUILDD_MAX_CONCURRENT\?\)/)
  // The binary the server really runs on, not the one that spawned it: scripts/ensure-node.sh must reach the children.
  const version = (await execa(await readlink(`/proc/${child.pid}/exe`), ['--version'])).stdout
  t.comment(`server runs on node ${version}`)
  t.ok(Number(/^v(\d+)\./.exec(version)?.[1]) >= 24, `Node.js 24 or newer (package.json engines), got ${version}`)
  t.equal((await fetch(`${url}/healthz`)).status, 200)
  child.kill('SIGTERM')
  const r = await child
  t.equal(r.exitCode, 0, 'a clean exit')
  t.match(r.all, /shutting down; running builds keep running/)
})
