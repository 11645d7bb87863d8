import t from 'tap'
import { configUrlRefusal, isPublicAddress, systemLookup, type Lookup, type UrlPolicy } from '../../src/git/config-url.js'

// Tests send no network traffic: names resolve through this table.
const DNS: Record<string, string[]> = {
  'github.com': ['140.82.121.3'],
  'gitlab.com': ['172.65.251.78', '2606:4700:90:0:f22e:fbec:5bed:a9b9'],
  'internal.example.com': ['10.0.0.5'],
  'mixed.example.com': ['140.82.121.3', '192.168.1.10'],
  'mapped.example.com': ['::ffff:127.0.0.1'],
  'v6local.example.com': ['fd12:3456::1']
}
const calls: string[] = []
const fakeLookup: Lookup = async (host) => {
  calls.push(host)
  const a = DNS[host]
  if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' })
  return a
}
const policy = (over: Partial<UrlPolicy> = {}): UrlPolicy =>
  ({ schemes: ['https'], allowPrivateHosts: false, allowedPrefixes: [], allowFileUrls: false, ...over })
const refusal = async (url: string, over?: Partial<UrlPolicy>) => await configUrlRefusal(url, policy(over), fakeLookup)

t.test('isPublicAddress', async (t) => {
  for (const ip of ['140.82.121.3', '8.8.8.8', '2606:4700::1', '::ffff:8.8.8.8']) t.ok(isPublicAddress(ip), ip)
  for (const ip of ['127.0.0.1', '::1', '10.1.2.3', '172.16.0.1', '192.168.0.1', 'fc00::1', 'fd00::1',
    '169.254.169.254', 'fe80::1', 'fe80::1%eth0', '0.0.0.0', '::', '100.64.0.1', '224.0.0.1', 'ff02::1',
    '255.255.255.255', '240.0.0.1', '192.0.2.1', '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:7f00:1',
    '0x7f000001', '2130706433', 'not-an-ip', '']) t.notOk(isPublicAddress(ip), ip)
})

t.test('API7 SSRF rows are refused', async (t) => {
  t.match(await refusal('https://127.0.0.1/repo.git'), /127\.0\.0\.1 is a loopback address/)
  t.match(await refusal('https://[::1]/repo.git'), /\[::1\] is a loopback address/)
  t.match(await refusal('https://169.254.169.254/latest/meta-data'), /linkLocal/)
  t.match(await refusal('https://0x7f000001/repo.git'), /loopback/)
  t.match(await refusal('https://2130706433/repo.git'), /loopback/)
  t.match(await refusal('https://0177.0.0.1/repo.git'), /loopback/)
  t.match(await refusal('https://127.1/repo.git'), /loopback/)
  t.match(await refusal('https://internal.example.com/repo.git'), /resolves to a private address/)
  t.notMatch(await refusal('https://internal.example.com/repo.git'), /10\.0\.0\.5/, 'internal addresses are not echoed')
  t.match(await refusal('file:///etc/passwd'), /file:\/\/ config repositories are not allowed/)
  t.match(await refusal('ext::sh -c touch% /tmp/x'), /whitespace/)
  t.match(await refusal('ext::ssh'), /remote helper/)
  t.match(await refusal('fd::17'), /remote helper/)
})

t.test('other private and internal hosts', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['https://10.0.0.1/r', /private/],
    ['https://172.31.255.255/r', /private/],
    ['https://192.168.1.1/r', /private/],
    ['https://[fd00::1]/r', /uniqueLocal/],
    ['https://[fe80::1]/r', /linkLocal/],
    ['https://0.0.0.0/r', /unspecified/],
    ['https://[::]/r', /unspecified/],
    ['https://100.64.0.1/r', /carrierGradeNat/],
    ['https://224.0.0.1/r', /multicast/],
    ['https://255.255.255.255/r', /broadcast/],
    ['https://240.0.0.1/r', /reserved/],
    ['https://[::ffff:127.0.0.1]/r', /loopback/],
    ['https://[::ffff:169.254.169.254]/r', /linkLocal/],
    ['https://localhost/r', /internal name/],
    ['https://LOCALHOST./r', /internal name/],
    ['https://api.localhost/r', /internal name/],
    ['https://metadata.google.internal/computeMetadata/v1/', /internal name/],
    ['https://mixed.example.com/r', /private address/],
    ['https://mapped.example.com/r', /loopback address/],
    ['https://v6local.example.com/r', /uniqueLocal address/],
    ['https://nowhere.example.com/r', /nowhere\.example\.com does not resolve/]
  ]
  for (const [url, re] of cases) t.match(await refusal(url), re, url)
})

t.test('ssh, git and scp-like forms are checked the same way', async (t) => {
  const ssh = { schemes: ['https', 'ssh', 'git'] }
  const cases: Array<[string, RegExp]> = [
    ['ssh://git@127.0.0.1/r.git', /loopback/],
    ['ssh://git@[::1]:22/r.git', /loopback/],
    ['ssh://git@[::ffff:127.0.0.1]/r.git', /loopback/],
    ['ssh://git@2130706433/r.git', /loopback/],
    ['ssh://git@0x7F000001/r.git', /loopback/],
    ['ssh://git@0177.0.0.1/r.git', /loopback/],
    ['ssh://git@127.1/r.git', /loopback/],
    ['ssh://git@1.2.3.4.5/r.git', /neither a hostname nor a valid IP/],
    ['ssh://git@localhost/r.git', /internal name/],
    ['ssh://git@internal.example.com/r.git', /private/],
    ['ssh://-oProxyCommand=touch%20x/r.git', /must not start with "-"/],
    ['git://169.254.169.254/r.git', /linkLocal/],
    ['git://0x7f.1/r.git', /loopback/],
    ['git@127.0.0.1:r.git', /loopback/],
    ['git@2130706433:r.git', /loopback/],
    ['git@0x7f000001:r.git', /loopback/],
    ['git@10.0.0.1:r.git', /private/],
    ['git@localhost:r.git', /internal name/],
    ['git@internal.example.com:coreos/r.git', /private/],
    ['git@nowhere.example.com:r.git', /does not resolve/]
  ]
  for (const [url, re] of cases) t.match(await refusal(url, ssh), re, url)
  t.equal(await refusal('ssh://git@github.com/coreos/r.git', ssh), undefined)
  t.equal(await refusal('git@github.com:coreos/r.git', ssh), undefined)
  t.equal(await refusal('git://github.com/coreos/r.git', ssh), undefined)
})

t.test('schemes follow the policy', async (t) => {
  t.match(await refusal('ssh://git@github.com/coreos/r.git'), /scheme ssh is not allowed: use https/)
  t.match(await refusal('git@github.com:coreos/r.git'), /scheme ssh is not allowed/, 'scp-like counts as ssh')
  t.match(await refusal('git://github.com/coreos/r.git'), /scheme git is not allowed/)
  t.match(await refusal('http://github.com/coreos/r.git'), /scheme http is not allowed/)
  t.match(await refusal('https://github.com/coreos/r.git', { schemes: ['ssh'] }), /scheme https is not allowed: use ssh/)
  t.match(await refusal('git+ssh://git@github.com/r.git', { schemes: ['https', 'git+ssh'] }), /scheme git\+ssh is not allowed/, 'only fetch schemes can be configured')
  t.match(await refusal('ftp://github.com/r.git', { schemes: ['ftp'] }), /scheme ftp is not allowed/)
  t.match(await refusal('https://user:pw@github.com/r.git'), /password/)
  t.match(await refusal('-uhttps://github.com/r'), /"-"/)
  t.match(await refusal('https://git hub.com/r'), /whitespace/)
  t.match(await refusal('github.com/coreos/r'), /not a URL/)
  t.match(await refusal('https://github.com/r\0'), /NUL/)
  t.equal(await refusal('file:///srv/config', { allowFileUrls: true }), undefined)
  t.match(await refusal('file://host/srv/config', { allowFileUrls: true }), /take no host/)
  t.match(await refusal('ssh:///srv/config', { schemes: ['ssh'] }), /has no host/)
  t.match(await refusal('git@github.com:r', { schemes: ['ssh'], allowedPrefixes: ['not a url'] }), /not under an allowed/, 'an unparsable prefix matches nothing useful')
})

t.test('allowPrivateHosts lets local development through', async (t) => {
  calls.length = 0
  const dev = { allowPrivateHosts: true, schemes: ['https', 'ssh'] }
  t.equal(await refusal('https://127.0.0.1/r.git', dev), undefined)
  t.equal(await refusal('https://localhost:8443/r.git', dev), undefined)
  t.equal(await refusal('git@10.0.0.1:r.git', dev), undefined)
  t.same(calls, [], 'no lookups')
  t.match(await refusal('ssh://git@127.0.0.1/r.git', { allowPrivateHosts: true }), /scheme ssh/, 'schemes still apply')
  t.match(await refusal('ext::x', dev), /remote helper/, 'syntax still applies')
})

t.test('prefix allowlist', async (t) => {
  const coreos = { allowedPrefixes: ['https://github.com/coreos/'] }
  t.equal(await refusal('https://github.com/coreos/fedora-coreos-config', coreos), undefined)
  t.equal(await refusal('HTTPS://GitHub.COM:443/coreos/fedora-coreos-config.git', coreos), undefined, 'scheme, host and default port normalised')
  t.match(await refusal('https://github.com/Coreos/x', coreos), /not under an allowed repository prefix \(https:\/\/github\.com\/coreos\/\)/, 'paths are case-sensitive')
  t.match(await refusal('https://github.com/evil/x', coreos), /not under an allowed/)
  t.match(await refusal('https://github.com:8443/coreos/x', coreos), /not under an allowed/)
  t.match(await refusal('https://github.com.evil.example/coreos/x', coreos), /not under an allowed/)
  t.match(await refusal('https://x@github.com/coreos/x', coreos), /not under an allowed/, 'a user name is part of the prefix')
  t.match(await refusal('https://github.com/coreos/../evil/x', coreos), /not under an allowed/)
  t.match(await refusal('https://github.com/coreos/%2e%2e/evil/x', coreos), /not under an allowed/)
  t.match(await refusal('https://github.com/coreos/..%2fevil/x', coreos), /encoded/)

  const noSlash = { allowedPrefixes: ['https://github.com/coreos'] }
  t.match(await refusal('https://github.com/coreos-evil/x', noSlash), /not under an allowed/, 'prefix ends at a path boundary')
  t.equal(await refusal('https://github.com/coreos/x', noSlash), undefined)
  const repo = { allowedPrefixes: ['https://github.com/coreos/fedora-coreos-config'] }
  t.equal(await refusal('https://github.com/coreos/fedora-coreos-config', repo), undefined)
  t.equal(await refusal('https://github.com/coreos/fedora-coreos-config.git', repo), undefined)
  t.match(await refusal('https://github.com/coreos/fedora-coreos-config-evil', repo), /not under an allowed/)

  const ssh = { schemes: ['https', 'ssh'], allowedPrefixes: ['git@github.com:coreos/', 'https://gitlab.com/fedora/'] }
  t.equal(await refusal('git@github.com:coreos/r.git', ssh), undefined)
  t.equal(await refusal('ssh://git@GITHUB.com:22/coreos/r.git', ssh), undefined, 'scp-like and ssh:// forms compare equal')
  t.equal(await refusal('https://gitlab.com/fedora/r.git', ssh), undefined)
  t.match(await refusal('git@github.com:coreos/../evil/r.git', ssh), /path segments/)
  t.match(await refusal('git@github.com:evil/r.git', ssh), /not under an allowed/)

  calls.length = 0
  t.match(await refusal('https://internal.example.com/coreos/x', coreos), /not under an allowed/)
  t.same(calls, [], 'no lookup for a URL outside the allowlist')
  t.match(await refusal('https://github.com/coreos/x', { allowedPrefixes: ['https://127.0.0.1/coreos/'] }), /not under/)
  t.match(await refusal('https://127.0.0.1/coreos/x', { allowedPrefixes: ['https://127.0.0.1/coreos/'] }), /loopback/, 'an allowlisted private host still needs allowPrivateHosts')
})

t.test('public hosts are accepted', async (t) => {
  t.equal(await refusal('https://github.com/coreos/fedora-coreos-config'), undefined)
  t.equal(await refusal('https://gitlab.com/fedora/r.git'), undefined)
  t.equal(await refusal('https://140.82.121.3/coreos/r.git'), undefined)
  t.equal(await refusal('https://[2606:4700::1]/r.git'), undefined)
  t.equal(await refusal('https://github.com./coreos/r.git'), undefined)
})

t.test('the system lookup resolves localhost from /etc/hosts', async (t) => {
  const addrs = await systemLookup('localhost')
  t.ok(addrs.length > 0 && addrs.every((a) => !isPublicAddress(a)), `localhost → ${addrs.join(', ')}`)
  t.match(await configUrlRefusal('https://localhost/r.git', policy()), /internal name/, 'default lookup path')
})

t.test('syntax and schemes', async (t) => {
  const ssh = { schemes: ['https', 'ssh'] }
  t.equal(await refusal('https://github.com/coreos/fedora-coreos-config', ssh), undefined)
  t.equal(await refusal('ssh://git@github.com/repo.git', ssh), undefined)
  t.equal(await refusal('git@github.com:coreos/fedora-coreos-config.git', ssh), undefined)
  t.match(await refusal('file:///srv/repo'), /not allowed/)
  t.equal(await refusal('file:///srv/repo', { allowFileUrls: true }), undefined)
  t.match(await refusal('http://github.com/r'), /scheme http/)
  t.match(await refusal('ext::sh -c touch% /tmp/x'), /whitespace|not a URL|scheme/)
  t.match(await refusal('-uhttps://x'), /"-"/)
  t.match(await refusal('https://user:pw@github.com/r'), /password/)
  t.match(await refusal('not a url'), /whitespace/)
})
