import { readFile } from 'node:fs/promises'
import type { EngineSettings } from '../../config.js'
import { EngineError } from '../executor.js'
import type { DockerConnection } from './docker-engine.js'

// From an engine's settings (unix:// or tcp:// with certificate paths) to
// what DockerEngine dials. The certificates are read here, once per engine,
// and go nowhere but into the TLS options: errors name the file, never its content.

async function pem (field: string, path: string) {
  let content: Buffer
  try {
    content = await readFile(path)
  } catch (err) {
    throw new EngineError('invalid', `tls.${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  if (!content.includes('-----BEGIN ')) throw new EngineError('invalid', `tls.${field}: ${path} is not a PEM file`)
  return content
}

export async function dockerConnection (settings: Pick<EngineSettings, 'host' | 'tls'>): Promise<DockerConnection> {
  if (settings.host.startsWith('unix://')) return { socketPath: settings.host.slice('unix://'.length) }
  const url = new URL(settings.host)
  if (!settings.tls) throw new EngineError('invalid', 'a tcp:// engine needs tls {ca, cert, key}')
  const [ca, cert, key] = await Promise.all([pem('ca', settings.tls.ca), pem('cert', settings.tls.cert), pem('key', settings.tls.key)])
  return { host: url.hostname, port: Number(url.port), ca, cert, key }
}
