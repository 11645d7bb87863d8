import { execa } from 'execa'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { configRepo, requireDocker, ROOT, tempDir } from './helpers.js'
import { startServer } from './server-process.js'

// The README's command and curl examples, run as written, in order, against a
// real server and real builds. Three things are put in place, as a reader
// would: the server's address (the test's own port, not 8080), the config
// repository (a local copy of examples/minimal, not the placeholder URL), and
// the command (this checkout's CLI, where the README says `npm run -s cli --`).

const README = join(ROOT, 'README.md')
const PLACEHOLDER_REPO = 'https://github.com/example/my-os-config'

/** The ```sh blocks under a `## heading`, up to the next `## `. */
export function shellBlocks (markdown: string, heading: string) {
  const start = markdown.indexOf(`\n## ${heading}\n`)
  if (start < 0) throw new Error(`no section "${heading}"`)
  const end = markdown.indexOf('\n## ', start + 1)
  const section = markdown.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!)
}

t.test('the README\'s examples run as written', async (t) => {
  if (!await requireDocker(t)) return
  const readme = await readFile(README, 'utf8')
  const blocks = [...shellBlocks(readme, 'Using the command'), ...shellBlocks(readme, 'Using the API')]
  t.equal(blocks.length, 2, 'one block of commands, one of curl')
  for (const block of blocks) {
    t.ok(block.includes('8080'), 'each block talks to the server the README starts')
    t.ok(block.includes(PLACEHOLDER_REPO) || !block.includes('stream put'), 'and names the placeholder repository')
  }

  const server = await startServer(t, await tempDir(t, 'cosa-buildd-readme-'), 1)
  const address = server.url.replace('http://', '')
  const repo = await configRepo(t)
  const cwd = await tempDir(t, 'cosa-buildd-readme-cwd-')
  const cli = join(cwd, 'cosa-buildd')
  await writeFile(cli, `#!/bin/sh\nexec ${process.execPath} ${process.execArgv.join(' ')} ${join(ROOT, 'src/cli.ts')} "$@"\n`)
  await chmod(cli, 0o755)
  const script = blocks.join('\n')
    .replaceAll('npm run -s cli --', cli)
    .replaceAll('127.0.0.1:8080', address)
    .replaceAll('localhost:8080', address)
    .replaceAll(PLACEHOLDER_REPO, repo.url)

  const run = await execa('bash', ['-euo', 'pipefail', '-c', script], { cwd, reject: false, all: true, timeout: 300_000 })
  t.equal(run.exitCode, 0, 'the examples run without an error', { output: run.all.slice(-6000) })
  t.notMatch(run.all, /"code":"BLD_/, 'no API error on the way')
  t.ok((await stat(join(cwd, 'disk.qcow2'))).size > 0, 'the CLI downloaded the disk')
  const qemu = await execa('qemu-img', ['check', join(cwd, 'disk.qcow2')], { reject: false, all: true })
  t.equal(qemu.exitCode, 0, `and it is a sound qcow2: ${qemu.all}`)
  t.match(run.all, /"state":"(succeeded|unchanged)"/, 'curl showed the build')
  t.notMatch(server.output(), /"status":5\d\d/, 'the server answered no 5xx')
})
