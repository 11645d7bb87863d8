// Which config repository URLs a stream may use. https and ssh are the real
// ones; file:// (a repository on the API host) only where the deployment
// allows it, since it reads the host's filesystem.

const SCP_LIKE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$/

export function configUrlProblem (url: string, opts: { allowFileUrls: boolean }): string | undefined {
  if (/[\s\0]/.test(url)) return 'config.url must not contain whitespace or NUL'
  if (url.startsWith('-')) return 'config.url must not start with "-"'
  if (SCP_LIKE.test(url)) return undefined
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'config.url is not a URL: use https://host/repo.git or ssh://git@host/repo.git'
  }
  switch (parsed.protocol) {
    case 'https:':
    case 'ssh:':
      if (!parsed.hostname) return 'config.url has no host'
      if (parsed.password) return 'config.url must not embed a password; configure credentials on the server'
      return undefined
    case 'file:':
      if (!opts.allowFileUrls) {
        return 'file:// config repositories are not allowed on this server (set allowFileUrls for local development)'
      }
      if (parsed.hostname) return 'file:// URLs take no host: file:///absolute/path'
      return undefined
    default:
      return `config.url scheme ${parsed.protocol.replace(/:$/, '')} is not allowed: use https or ssh`
  }
}
