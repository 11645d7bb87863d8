import { execa } from 'execa'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { ROOT, tempDir } from '../helpers.js'

// deploy/compose.yaml as Compose reads it: `docker-compose config` (Debian's
// docker-compose) validates it against the Compose schema and resolves it.

const FILE = join(ROOT, 'deploy/compose.yaml')
const ENV = { COSA_BUILDD_ENV_FILE: join(ROOT, 'deploy/env.example'), DOCKER_GID: '998' }
const config = (file: string) => execa('docker-compose', ['-f', file, 'config'], { reject: false, all: true, env: ENV })

t.test('docker-compose config accepts the compose file', async (t) => {
  const r = await config(FILE)
  t.equal(r.exitCode, 0, r.all)
  const service = parse(r.stdout).services['cosa-buildd']
  t.ok(service.init, '--init')
  t.ok(service.volumes.some((v: any) => (v.source ?? v.split(':')[0]) === '/var/run/docker.sock'), 'the Docker socket')
  const data = service.volumes.find((v: any) => (v.source ?? v.split(':')[0]) === '/var/lib/cosa-buildd')
  t.equal(data.target ?? data.split(':')[1], service.environment.COSA_BUILDD_DATA_DIR, 'the data directory at the same path')
  t.same(service.group_add, ['998'], "the socket's group")
  t.match(service.ports[0].host_ip ?? service.ports[0], /127\.0\.0\.1/, 'published on loopback')
})

t.test('the check can fail: a misspelt key is refused', async (t) => {
  const bad = join(await tempDir(t), 'compose.yaml')
  await writeFile(bad, (await readFile(FILE, 'utf8')).replace('    init: true', '    inits: true'))
  t.match((await config(bad)).all, /Unsupported config option for services\.cosa-buildd: 'inits'/)
})
