import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { configuredEngines, loadConfig, unknownEnv } from '../src/config.js'
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

t.test('database.url: SQLite when unset, a postgres:// URL otherwise; a bad one refused without echoing it', async (t) => {
  t.equal(loadConfig({}).database.url, undefined)
  const url = 'postgres://cosa:s3cret@db.example.com:5432/cosa'
  t.equal(loadConfig({ COSA_BUILDD_DATABASE_URL: url }).database.url, url)
  const err = (() => { try { loadConfig({ COSA_BUILDD_DATABASE_URL: 'mysql://cosa:s3cret@db/cosa' }) } catch (e) { return e as Error } })()
  t.match(err?.message, /database\.url \(COSA_BUILDD_DATABASE_URL\): must be a postgres:\/\/ or postgresql:\/\/ URL/)
  t.notMatch(err?.message, 's3cret', 'the password is not repeated')
})

t.test('engines: none configured is the one local engine of docker.*, with room for every build', async (t) => {
  const config = loadConfig({}, { docker: { name: 'here', socketPath: '/run/d.sock' }, builds: { maxConcurrent: 3 } })
  t.equal(config.engines, undefined)
  t.same(configuredEngines(config), [{ name: 'here', host: 'unix:///run/d.sock', capacity: 3, labels: {} }])
  t.equal(config.builds.homeEngineWaitMs, 600_000, 'a build waits 10 minutes for its home engine by default')
})

t.test('engines: unix and tcp with TLS; capacity defaults to 1; tls required for tcp and refused for unix', async (t) => {
  const tls = { ca: '/etc/cb/ca.pem', cert: '/etc/cb/cert.pem', key: '/etc/cb/key.pem' }
  const config = loadConfig({}, {
    engines: [
      { name: 'local', host: 'unix:///var/run/docker.sock', capacity: 2 },
      { name: 'arm', host: 'tcp://127.0.0.1:2376', tls, arch: 'aarch64', labels: { rack: 'r1' } }
    ]
  })
  t.same(configuredEngines(config), [
    { name: 'local', host: 'unix:///var/run/docker.sock', capacity: 2, labels: {} },
    { name: 'arm', host: 'tcp://127.0.0.1:2376', tls, arch: 'aarch64', capacity: 1, labels: { rack: 'r1' } }
  ])
  t.throws(() => loadConfig({}, { engines: [{ name: 'r', host: 'tcp://10.0.0.1:2376' }] }),
    /engines\.0\.tls: a tcp:\/\/ engine needs tls \{ca, cert, key\}: mutual TLS is required/)
  t.throws(() => loadConfig({}, { engines: [{ name: 'l', host: 'unix:///s', tls }] }), /engines\.0\.tls: a unix:\/\/ engine takes no tls/)
  t.throws(() => loadConfig({}, { engines: [{ name: 'l', host: 'http://x:1' }] }), /engines\.0\.host: unix:\/\/\/path/)
  t.throws(() => loadConfig({}, { engines: [{ name: 'l', host: 'unix:///a' }, { name: 'l', host: 'unix:///b' }] }), /engine names must be unique/)
  t.throws(() => loadConfig({}, { engines: [{ name: 'l', host: 'unix:///a', arch: 'i386' }] }), /engines\.0\.arch/)
  t.throws(() => loadConfig({}, { engines: [{ name: 'l', host: 'unix:///a', capacity: 0 }] }), /engines\.0\.capacity/)
})
