import t from 'tap'
import { configUrlProblem } from '../../src/git/config-url.js'

t.test('config URLs', async (t) => {
  const strict = { allowFileUrls: false }
  t.equal(configUrlProblem('https://github.com/coreos/fedora-coreos-config', strict), undefined)
  t.equal(configUrlProblem('ssh://git@example.com/repo.git', strict), undefined)
  t.equal(configUrlProblem('git@github.com:coreos/fedora-coreos-config.git', strict), undefined)
  t.match(configUrlProblem('file:///srv/repo', strict), /not allowed/)
  t.equal(configUrlProblem('file:///srv/repo', { allowFileUrls: true }), undefined)
  t.match(configUrlProblem('http://example.com/r', strict), /scheme http/)
  t.match(configUrlProblem('ext::sh -c touch% /tmp/x', strict), /whitespace|not a URL|scheme/)
  t.match(configUrlProblem('-uhttps://x', strict), /"-"/)
  t.match(configUrlProblem('https://user:pw@example.com/r', strict), /password/)
  t.match(configUrlProblem('not a url', strict), /whitespace/)
})
