// Which config repository URLs a stream may use. https and ssh are the real
// ones; file:// (a repository on the API host) only where the deployment
// allows it, since it reads the host's filesystem.
//
// The server (and later the build) fetches whatever URL a client names, so a
// URL is also an SSRF vector: configUrlRefusal adds a scheme policy, a prefix
// allowlist and a check that the host is, and resolves only to, public
// addresses. It answers for the moment it runs; see isPublicAddress and the
// Lookup parameter for pinning the address at clone time (DNS rebinding).

import { lookup as dnsLookup } from 'node:dns/promises'
import ipaddr from 'ipaddr.js'

const SCP_LIKE = /^([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+):([^\s]+)$/
// git's "<transport>::<address>" syntax runs remote helpers (ext:: runs commands).
const REMOTE_HELPER = /^[A-Za-z0-9+.-]+::/
// Schemes git can fetch over; anything else (git+ssh, fd, ext…) is refused even if configured.
const FETCH_SCHEMES = new Set(['https', 'http', 'ssh', 'git'])
const DEFAULT_PORTS: Record<string, string> = { https: '443', http: '80', ssh: '22', git: '9418' }
// "." and ".." segments, raw or percent-encoded, and encoded separators would
// let a URL that textually starts with an allowed prefix name another path.
const PATH_TRICKS = /(?:^|[/\\:])(?:\.|%2e){1,2}(?:[/\\?#]|$)|%2f|%5c/i
const HOSTNAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/
const NUMERIC_LABEL = /^(0x[0-9a-f]*|\d+)$/i
const INTERNAL_NAMES = new Set(['localhost', 'metadata.google.internal'])

export interface UrlPolicy {
  /** Allowed schemes ('https', and 'ssh'/'git'/'http' only when configured); user@host:path counts as 'ssh'. */
  schemes: string[]
  /** Lets loopback and private hosts through: local development only. */
  allowPrivateHosts: boolean
  /** When non-empty, the normalised URL must start with one of these, e.g. 'https://github.com/coreos/'. */
  allowedPrefixes: string[]
  allowFileUrls: boolean
  /** How messages name the URL (default `config.url`; webhooks say `url`). */
  label?: string
}

/** Resolves a hostname to every address it has. */
export type Lookup = (hostname: string) => Promise<string[]>

export const systemLookup: Lookup = async (hostname) =>
  (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => a.address)

/** True only for globally routable unicast addresses; anything unparsable is not public. */
export function isPublicAddress (ip: string): boolean {
  // process() turns ::ffff:a.b.c.d into a.b.c.d so a mapped loopback is classed as loopback.
  return ipaddr.isValid(ip) && ipaddr.process(ip).range() === 'unicast'
}

interface Target { scheme: string, user: string, host: string, port: string, path: string }

type Parsed = { problem: string } | { target: Target }

function parse (url: string, label = 'config.url'): Parsed {
  if (/[\s\0]/.test(url)) return { problem: `${label} must not contain whitespace or NUL` }
  if (url.startsWith('-')) return { problem: `${label} must not start with "-"` }
  if (REMOTE_HELPER.test(url)) return { problem: `${label} must not use a git remote helper (transport::address)` }
  const scp = SCP_LIKE.exec(url)
  if (scp) return { target: { scheme: 'ssh', user: scp[1]!, host: scp[2]!, port: '', path: '/' + scp[3]! } }
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return { problem: `${label} is not a URL: use https://host/repo.git or ssh://git@host/repo.git` }
  }
  const scheme = parsed.protocol.replace(/:$/, '')
  if (scheme !== 'file') {
    if (!parsed.hostname) return { problem: `${label} has no host` }
    if (parsed.password) return { problem: `${label} must not embed a password; configure credentials on the server` }
  }
  return { target: { scheme, user: parsed.username, host: parsed.hostname, port: parsed.port, path: parsed.pathname + parsed.search + parsed.hash } }
}

function schemeProblem (t: Target, schemes: string[], allowFileUrls: boolean, label: string): string | undefined {
  if (t.scheme === 'file') {
    if (!allowFileUrls) return `file:// ${label === 'config.url' ? 'config repositories' : label + ' URLs'} are not allowed on this server (set allowFileUrls for local development)`
    if (t.host) return 'file:// URLs take no host: file:///absolute/path'
    return undefined
  }
  if (!FETCH_SCHEMES.has(t.scheme) || !schemes.includes(t.scheme)) {
    return `${label} scheme ${t.scheme} is not allowed: use ${schemes.filter((s) => FETCH_SCHEMES.has(s)).join(' or ') || 'https'}`
  }
  // ssh would read a leading "-" in the user or host as an option (CVE-2017-1000117).
  if (t.user.startsWith('-') || t.host.startsWith('-')) return `${label} user and host must not start with "-"`
  return undefined
}

function normalise (t: Target): string {
  if (t.scheme === 'file') return 'file://' + t.path
  const port = t.port && t.port !== DEFAULT_PORTS[t.scheme] ? ':' + t.port : ''
  return `${t.scheme}://${t.user ? t.user + '@' : ''}${t.host.toLowerCase()}${port}${t.path}`
}

function normalisePrefix (prefix: string): string {
  const p = parse(prefix)
  return 'target' in p ? normalise(p.target) : prefix
}

function prefixProblem (t: Target, prefixes: string[], label: string): string | undefined {
  if (prefixes.length === 0) return undefined
  if (PATH_TRICKS.test(t.path)) return `${label} must not contain "." or ".." path segments or encoded "/" or "\\"`
  const url = normalise(t)
  // A prefix without a trailing "/" ends at a path boundary: https://github.com/coreos
  // must not admit https://github.com/coreos-evil.
  const ok = prefixes.map(normalisePrefix).some((p) => url.startsWith(p) &&
    (p.endsWith('/') || url.length === p.length || url[p.length] === '/' || url === p + '.git'))
  return ok ? undefined : `${label} is not under an allowed repository prefix (${prefixes.join(', ')})`
}

async function hostProblem (rawHost: string, lookup: Lookup, label: string): Promise<string | undefined> {
  const host = rawHost.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '')
  const refused = (what: string): string => `${label} host ${rawHost} ${what}; this server only fetches from public addresses`
  // WHATWG URL rewrites 0x7f000001, 2130706433, 0177.0.0.1 and 127.1 to 127.0.0.1 for
  // https only; ssh, git and scp-like hosts arrive raw, and resolvers accept those forms.
  const literal = host.includes(':') || NUMERIC_LABEL.test(host.split('.').pop()!)
  if (literal) {
    if (!ipaddr.isValid(host)) return `${label} host ${rawHost} is neither a hostname nor a valid IP address`
    return isPublicAddress(host) ? undefined : refused(`is a ${ipaddr.process(host).range()} address`)
  }
  if (!HOSTNAME.test(host)) return `${label} host ${rawHost} is not a valid hostname`
  if (INTERNAL_NAMES.has(host) || host.endsWith('.localhost')) return refused('is an internal name')
  let addresses: string[]
  try {
    addresses = await lookup(host)
  } catch {
    addresses = []
  }
  if (addresses.length === 0) return `${label} host ${rawHost} does not resolve`
  // Any private answer refuses: git may connect to whichever address it picks.
  // The address itself is not echoed, so clients cannot map internal DNS.
  const bad = addresses.find((a) => !isPublicAddress(a))
  return bad === undefined ? undefined : refused(`resolves to a ${ipaddr.isValid(bad) ? ipaddr.process(bad).range() : 'non-IP'} address`)
}

/**
 * Why the server refuses this config repository URL (a message for the API
 * client), or undefined when it may be used.
 */
export async function configUrlRefusal (url: string, policy: UrlPolicy, lookup: Lookup = systemLookup): Promise<string | undefined> {
  const label = policy.label ?? 'config.url'
  const p = parse(url, label)
  if ('problem' in p) return p.problem
  const t = p.target
  const problem = schemeProblem(t, policy.schemes, policy.allowFileUrls, label) ?? prefixProblem(t, policy.allowedPrefixes, label)
  if (problem !== undefined || t.scheme === 'file' || policy.allowPrivateHosts) return problem
  return await hostProblem(t.host, lookup, label)
}
