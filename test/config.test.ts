import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig, unknownEnv } from '../src/config.js'
import { ROOT } from './helpers.js'

const envFile = async (path: string) => Object.fromEntries((await readFile(path, 'utf8')).split('\n')
  .filter((line) => /^[A-Z_]+=/.test(line)).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))

t.test('an error names the environment variable as well as the file key', async (t) => {
  t.throws(() => loadConfig({ COSA_BUILDD_MAX_CONCURRENT: 'two' }),
    /builds\.maxConcurrent \(COSA_BUILDD_MAX_CONCURRENT\): /)
  t.throws(() => loadConfig({ COSA_BUILDD_SECURITY_PROFILE: 'root' }),
    /builds\.securityProfile \(COSA_BUILDD_SECURITY_PROFILE\)/)
})

t.test('an unknown COSA_BUILDD_* variable is found, with the nearest known name', async (t) => {
  t.same(unknownEnv({ COSA_BUILDD_MAX_CONCURENT: '3', COSA_BUILDD_PORT: '1', COSA_BUILDD_CONFIG: 'x', PATH: '/bin' }),
    [{ name: 'COSA_BUILDD_MAX_CONCURENT', nearest: 'COSA_BUILDD_MAX_CONCURRENT' }])
  t.same(unknownEnv({ COSA_BUILDD_URL: 'http://127.0.0.1:8080', COSA_BUILDD_TOKEN: 'x' }), [], "the CLI's variables are known")
})

t.test('the loaded configuration is frozen, all the way down', async (t) => {
  const config = loadConfig({})
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.builds) && Object.isFrozen(config.tokens.read))
  t.throws(() => { (config.builds as { maxConcurrent: number }).maxConcurrent = 9 }, TypeError)
})

t.test('defaults fill every section from nothing', async (t) => {
  const config = loadConfig({})
  t.equal(config.docker.socketPath, '/var/run/docker.sock')
  t.equal(config.http.submitsPerMinute, 120)
  t.same(config.repositories.schemes, ['https', 'ssh'])
  t.same(config.storage.artifacts, { kind: 'local' })
})

t.test('DOCKER_HOST: unix:// is honoured, tcp:// refused with the reason', async (t) => {
  t.equal(loadConfig({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' }).docker.socketPath, '/run/user/1000/docker.sock')
  t.throws(() => loadConfig({ DOCKER_HOST: 'tcp://127.0.0.1:2376', DOCKER_TLS_VERIFY: '1' }),
    /DOCKER_HOST=tcp:\/\/127\.0\.0\.1:2376 is not supported: .*same host/)
})

t.test("deploy/env.example's placeholder tokens do not pass", async (t) => {
  const env = await envFile(join(ROOT, 'deploy/env.example'))
  t.ok(env.COSA_BUILDD_ADMIN_TOKENS, 'the example sets tokens')
  t.throws(() => loadConfig(env), /tokens\.admin\.0 \(COSA_BUILDD_ADMIN_TOKENS\): a placeholder token/)
  const real = { ...env, COSA_BUILDD_ADMIN_TOKENS: 'a'.repeat(32), COSA_BUILDD_SUBMIT_TOKENS: 'b'.repeat(32), COSA_BUILDD_READ_TOKENS: 'c'.repeat(32) }
  t.equal(loadConfig(real).tokens.admin[0], 'a'.repeat(32), 'with real tokens it loads')
})
