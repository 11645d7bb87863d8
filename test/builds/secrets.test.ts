import t from 'tap'
import { DEFAULT_RECIPE } from '../../src/cosa/recipe.js'
import { buildOnce, configRepo, requireDocker, startApp } from '../helpers.js'

// S7: a build that prints its secrets, its own result token, terminal
// control sequences and progress-bar carriage returns; the stored log shows
// none of them, and the API never gives a secret's value back.

const TOKEN = 'ghp_0123456789abcdefghijklmnopqrstuvwxyz'
const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAMwAAAAtzc2gtZWQyNTUxOQAAACD0123456789ab\n-----END OPENSSH PRIVATE KEY-----'

t.test('secrets reach the build as environment variables and never its log', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  const noisy = [
    'echo "token=$REGISTRY_TOKEN and again $REGISTRY_TOKEN"',
    'printf "%s\\n" "$DEPLOY_KEY"',
    'echo "result token: $COSA_BUILDD_TOKEN"',
    'printf "\\033[1;31mred\\033[0m \\033]0;title\\007plain \\033]8;;https://x\\007link\\033]8;;\\007\\n"',
    'printf "10%%\\r50%%\\r100%%\\n"',
    'printf "split \\033[32mghp_0123456789abcdef\\033[0mghijklmnopqrstuvwxyz\\n"'
  ].join('; ')
  const res = await h.app.inject({
    method: 'PUT',
    url: '/v1/streams/minimal',
    payload: {
      config: { url: repo.url, ref: 'main' },
      recipe: [['shell', '--', 'bash', '-c', noisy], ...DEFAULT_RECIPE],
      secrets: { REGISTRY_TOKEN: TOKEN, DEPLOY_KEY: KEY }
    }
  })
  t.equal(res.statusCode, 201)
  t.same(res.json().secrets, ['REGISTRY_TOKEN', 'DEPLOY_KEY'], 'the API shows the names only')
  t.notMatch(res.body, TOKEN)
  const listed = (await h.app.inject({ url: '/v1/streams' })).body
  t.notMatch(listed, TOKEN)
  t.notMatch(listed, 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ')

  const build = await buildOnce(h, 'minimal')
  t.equal(build.state, 'succeeded', build.message ?? '')
  const log = (await h.app.inject({ url: `/v1/builds/${build.id}/log` })).body
  t.match(log, 'token=[REDACTED] and again [REDACTED]', 'a one-line secret, twice on a line')
  t.match(log, '[REDACTED]\n[REDACTED]\n[REDACTED]', 'each line of a multi-line secret')
  t.match(log, 'result token: [REDACTED]', 'the build\'s own result token')
  t.match(log, 'split [REDACTED]', 'a secret split by a colour code')
  for (const secret of [TOKEN, ...KEY.split('\n').filter((l) => l.length >= 8 && !l.startsWith('-----'))]) {
    t.notMatch(log, secret, `no trace of ${secret.slice(0, 12)}…`)
  }
  t.match(log, 'red plain link\n', 'colours, titles and hyperlinks are stripped')
  t.match(log, '10%\n50%\n100%\n', 'a bare carriage return becomes a line break')
  // eslint-disable-next-line no-control-regex
  t.notMatch(log, /[\x00-\x08\x0b-\x1f\x7f]/, 'no control character is left')
  t.equal(new Set(log.split('\n').filter((l) => l.startsWith('token='))).size, 1)
})

t.test('secret names and values are checked', async (t) => {
  const h = await startApp(t)
  const put = (secrets: unknown) => h.app.inject({
    method: 'PUT', url: '/v1/streams/s', payload: { config: { url: 'file:///nonexistent', ref: 'main' }, secrets }
  })
  for (const [secrets, why] of [
    [{ lower: 'long-enough-value' }, /secret "lower": names are environment variable names/],
    [{ COSA_BUILDD_TOKEN: 'long-enough-value' }, /not COSA_BUILDD_/],
    [{ GIT_CONFIG_GLOBAL: 'long-enough-value' }, /GIT_CONFIG_/],
    [{ SHORT: 'short' }, /at least 8 characters/]
  ] as const) {
    const res = await put(secrets)
    t.equal(res.statusCode, 400, JSON.stringify(secrets))
    t.match(res.json().message, why)
  }
})
