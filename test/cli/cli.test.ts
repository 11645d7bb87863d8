import { execa } from 'execa'
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { statusLine } from '../../src/cli/watch.js'
import { startFaultProxy } from '../fault-proxy.js'
import { configRepo, requireDocker, ROOT, tempDir } from '../helpers.js'
import { api, startServer, tickRecipe, until } from '../server-process.js'

// The executable as people and CI run it: a child process (with this test's
// loader, so coverage follows it) against the real server, started by
// `cosa-buildd serve`, building on the real Docker engine.

const CLI = join(ROOT, 'src/cli.ts')
// eslint-disable-next-line no-control-regex
const CONTROL = /\x1b|\r/

function cli (args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [...process.execArgv, CLI, ...args], {
    env, reject: false, forceKillAfterDelay: false, cwd: ROOT
  })
}

/** A CLI run in the background, its output kept as it comes. */
function background (args: string[], env: Record<string, string>) {
  const child = cli(args, env)
  const out = { stdout: '', stderr: '' }
  child.stdout!.on('data', (d) => { out.stdout += d })
  child.stderr!.on('data', (d) => { out.stderr += d })
  return { child, out }
}

const idIn = (text: string) => /build (\w+): http/.exec(text)?.[1]

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex')

if (await requireDocker(t)) {
  const repo = await configRepo(t)
  const server = await startServer(t, await tempDir(t), 3, { command: [CLI, 'serve'] })
  const env = { COSA_BUILDD_URL: server.url }
  const work = await tempDir(t, 'cosa-buildd-cli-')
  let built: any

  t.test('usage errors exit 2 and say what to run', async (t) => {
    for (const args of [[], ['build', 'submit'], ['build', 'submit', 'minimal', '--bogus'], ['build', 'list', '--limit', 'many'],
      ['bild'], ['--url', 'ftp://example.invalid', 'build', 'get', 'x'], ['stream', 'put', 'x']]) {
      const r = await cli(args, env)
      t.equal(r.exitCode, 2, args.join(' '))
      t.match(r.stderr, /cosa-buildd|--url|--file|takes a whole number/, `${args.join(' ')}: names the fix`)
    }
    const help = await cli(['--help'])
    t.equal(help.exitCode, 0)
    t.match(help.stdout, /build submit.*\n[\s\S]*Exit status/)
    t.match((await cli(['build', 'submit', '--help'])).stdout, /usage: cosa-buildd build submit STREAM/)
  })

  t.test('an unreachable server or a refusal exits 4', async (t) => {
    const down = await cli(['build', 'get', 'x'], { COSA_BUILDD_URL: 'http://127.0.0.1:9' })
    t.equal(down.exitCode, 4)
    t.match(down.stderr, /cannot reach the server at http:\/\/127\.0\.0\.1:9 .*cosa-buildd serve/)
    const missing = await cli(['build', 'submit', 'nope', '--wait'], env)
    t.equal(missing.exitCode, 4)
    t.match(missing.stderr, /BLD_STREAM_NOT_FOUND, HTTP 404\); with this command: cosa-buildd stream put NAME/)
    const token = await cli(['--token', 'not-a-configured-token', 'build', 'get', 'x'], env)
    t.equal(token.exitCode, 4, 'a token on an open server changes nothing; still a 404')
  })

  t.test('a 401 says where the token goes, and the token is sent', async (t) => {
    const seen: Array<string | undefined> = []
    const guarded = createServer((req, res) => {
      seen.push(req.headers.authorization)
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ code: 'BLD_UNAUTHORIZED', message: 'missing or unknown bearer token' }))
    })
    await new Promise<void>((resolve) => guarded.listen(0, '127.0.0.1', resolve))
    t.teardown(() => guarded.close())
    const url = `http://127.0.0.1:${(guarded.address() as { port: number }).port}`
    const r = await cli(['build', 'list', '--url', url], { COSA_BUILDD_TOKEN: 'a-token-from-the-environment' })
    t.equal(r.exitCode, 4)
    t.match(r.stderr, /HTTP 401\); pass --token or set COSA_BUILDD_TOKEN/)
    t.same(seen, ['Bearer a-token-from-the-environment'])
  })

  t.test('streams: put with options or a file, get, list', async (t) => {
    const put = await cli(['stream', 'put', 'minimal', '--url', repo.url, '--ref', 'main'], env)
    t.equal(put.exitCode, 0, put.stderr)
    const file = join(work, 'broken.json')
    await writeFile(file, JSON.stringify({
      config: { url: repo.url, ref: 'main' },
      recipe: [['shell', '--', 'false'], ['init', '--force', '--branch', '{ref}', '--commit', '{commit}', '{url}'], ['fetch'], ['build']]
    }))
    t.equal((await cli(['stream', 'put', 'broken', '--file', file], env)).exitCode, 0)
    t.equal((await cli(['stream', 'put', 'bad', '--file', join(work, 'none.json')], env)).exitCode, 2)
    const slow = await api(server, '/v1/streams/slow', { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe: tickRecipe(4) } })
    t.equal(slow.status, 201)
    const got = await cli(['stream', 'get', 'broken', '--json'], env)
    t.same(JSON.parse(got.stdout).recipe[0], ['shell', '--', 'false'])
    t.match((await cli(['stream', 'list'], env)).stdout, /^broken: file:\/\/.* main, image cosa-lite:latest/m)
  })

  t.test('--wait: succeeded exits 0; --json on stdout, progress on stderr, no control sequences off a terminal', async (t) => {
    const r = await cli(['build', 'submit', 'minimal', '--wait', '--json', '--download', 'qemu', '--output', join(work, 'dl')], env)
    t.equal(r.exitCode, 0, r.stderr)
    built = JSON.parse(r.stdout)
    t.equal(built.state, 'succeeded')
    const lines = r.stderr.split('\n')
    t.equal(lines[0], `build ${built.id}: ${server.url}/v1/builds/${built.id}`, 'the id and its URL come first')
    t.ok(lines.some((l) => /^running: \S/.test(l)) && lines.includes('succeeded'), 'one line per change, with the phase')
    t.notMatch(r.stdout + r.stderr, CONTROL)
    const qemu = built.result.artifacts.find((a: any) => a.name === 'qemu')
    t.equal(await sha256(join(work, 'dl', qemu.path.split('/').pop())), qemu.sha256, '--download fetched it')
  })

  t.test('a terminal gets one status line, rewritten in place', async (t) => {
    let written = ''
    const line = statusLine({ isTTY: true, write: (s: string) => { written += s; return true } } as any)
    line.update({ id: 'b', state: 'queued', queuePosition: 2, createdAt: new Date().toISOString() } as any)
    line.update({ id: 'b', state: 'running', phase: 'osbuild qemu', createdAt: new Date().toISOString() } as any)
    line.update({ id: 'b', state: 'failed', reason: 'exit_code', failedStep: 'osbuild qemu', createdAt: new Date().toISOString() } as any)
    line.end()
    t.match(written, /^\r\x1b\[Kqueued, position 2 {2}0:0\d\r\x1b\[Krunning: osbuild qemu {2}0:0\d\r\x1b\[Kfailed in osbuild qemu \(exit_code\) {2}0:0\d\n$/)
  })

  t.test('unchanged exits 0, failed 1', async (t) => {
    const again = await cli(['build', 'submit', 'minimal', '--wait'], env)
    t.equal(again.exitCode, 0, again.stderr)
    t.match(again.stdout, /: unchanged\n {2}cosa build /)
    const failed = await cli(['build', 'submit', 'broken', '--wait'], env)
    t.equal(failed.exitCode, 1)
    t.match(failed.stdout, /failed in shell \(exit_code\)/, 'the step it failed in')
  })

  t.test('a build cancelled while watched exits 3', async (t) => {
    const run = background(['build', 'submit', 'slow', '--wait'], env)
    const id = await until('the build id', 30_000, async () => idIn(run.out.stdout))
    await until('running', 60_000, async () => (await api(server, `/v1/builds/${id}`)).json().state === 'running')
    const cancel = await cli(['build', 'cancel', id], env)
    t.equal(cancel.exitCode, 0)
    t.equal((await run.child).exitCode, 3)
    t.match(run.out.stdout, /cancelled\n/)
  })

  t.test('Ctrl-C stops watching and leaves the build running', async (t) => {
    const run = background(['build', 'submit', 'slow', '--follow'], env)
    await until('a tick', 60_000, async () => run.out.stdout.includes('tick 1'))
    const id = idIn(run.out.stdout)!
    run.child.kill('SIGINT')
    t.equal((await run.child).exitCode, 130)
    t.match(run.out.stderr, `cosa-buildd build log ${id} -f`)
    t.not((await api(server, `/v1/builds/${id}`)).json().state, 'cancelled')
    const resumed = await cli(['build', 'log', id, '-f'], env)
    t.equal(resumed.exitCode, 0, 'build log -f exits with the outcome')
    t.match(resumed.stdout, /tick 4[\s\S]*build succeeded|unchanged/)
  })

  t.test('Ctrl-C with --cancel-on-interrupt cancels the build', async (t) => {
    const run = background(['build', 'submit', 'slow', '--follow', '--force', '--cancel-on-interrupt', '--json'], env)
    await until('a tick', 60_000, async () => run.out.stderr.includes('tick 1'))
    run.child.kill('SIGINT')
    t.equal((await run.child).exitCode, 3)
    t.equal(JSON.parse(run.out.stdout).state, 'cancelled')
  })

  t.test('--follow resumes at its byte offset when the connection drops', async (t) => {
    const port = Number(new URL(server.url).port)
    const proxy = await startFaultProxy({ host: '127.0.0.1', port }, t)
    const run = background(['build', 'submit', 'slow', '--follow', '--force'], { COSA_BUILDD_URL: proxy.url })
    await until('a tick', 60_000, async () => run.out.stdout.includes('tick 2'))
    proxy.drop()
    const r = await run.child
    t.equal(r.exitCode, 0, run.out.stderr)
    t.match(run.out.stderr, /the log connection closed at byte \d+; resuming/)
    for (const n of [1, 2, 3, 4]) t.equal(run.out.stdout.split(`tick ${n}\n`).length, 2, `tick ${n} once`)
    const { text } = await api(server, `/v1/builds/${idIn(run.out.stdout)}/log`)
    t.ok(run.out.stdout.includes(text), 'the whole log, in order')
  })

  t.test('artifact download resumes a .part and refuses a wrong sha256', async (t) => {
    const qemu = built.result.artifacts.find((a: any) => a.name === 'qemu')
    const whole = join(work, 'dl', qemu.path.split('/').pop())
    const target = join(work, 'resumed.qcow2')
    await writeFile(`${target}.part`, (await readFile(whole)).subarray(0, 1000))
    const resumed = await cli(['artifact', 'download', built.id, 'qemu', '-o', target], env)
    t.equal(resumed.exitCode, 0, resumed.stderr)
    t.equal(await sha256(target), qemu.sha256)
    const bad = join(work, 'bad.qcow2')
    await writeFile(`${bad}.part`, Buffer.alloc(1000, 0x58))
    const refused = await cli(['artifact', 'download', built.id, 'qemu', '-o', bad], env)
    t.equal(refused.exitCode, 5)
    t.match(refused.stderr, /sha256 is \w+, but build \w+ lists \w+; removed .*bad\.qcow2\.part: run the command again/)
    t.rejects(stat(bad))
    t.rejects(stat(`${bad}.part`))
    const unknown = await cli(['artifact', 'download', built.id, 'nope'], env)
    t.equal(unknown.exitCode, 4)
    t.match(unknown.stderr, /has no artifact "nope": it has ostree, qemu/)
  })

  t.test('get, list, pin, unpin, log', async (t) => {
    const pin = await cli(['build', 'pin', built.id, '--json'], env)
    t.equal(JSON.parse(pin.stdout).pinned, true)
    t.match((await cli(['build', 'unpin', built.id], env)).stdout, /succeeded\n {2}cosa build \S+ \(\w+\)\n/)
    const get = await cli(['build', 'get', built.id], env)
    t.match(get.stdout, new RegExp(`qemu: ${server.url}/v1/builds/${built.id}/artifacts/qemu`))
    const list = JSON.parse((await cli(['build', 'list', '--state', 'failed', '--state', 'cancelled', '--json'], env)).stdout)
    t.same([...new Set(list.builds.map((b: any) => b.state))].sort(), ['cancelled', 'failed'])
    t.match((await cli(['build', 'list', '--stream', 'minimal', '--limit', '1'], env)).stdout, /^\w+ {2}minimal {2}unchanged/)
    t.match((await cli(['build', 'log', built.id], env)).stdout, /==> cosa-buildd: build succeeded|publishing build/)
  })
}

t.test('the programs run through a symlink, as npm links bins', async (t) => {
  const { isMainModule } = await import('../../src/server.js')
  const dir = await tempDir(t)
  await execa('ln', ['-s', join(ROOT, 'src/server.ts'), join(dir, 'cosa-buildd')])
  t.ok(isMainModule(new URL('../../src/server.ts', import.meta.url).href, join(dir, 'cosa-buildd')))
  t.notOk(isMainModule(new URL('../../src/server.ts', import.meta.url).href, CLI))
  t.notOk(isMainModule(new URL('../../src/server.ts', import.meta.url).href, join(dir, 'missing')))
})
