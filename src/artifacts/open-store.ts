import { join, resolve } from 'node:path'
import type { Config } from '../config.js'
import type { ArtifactStore } from './artifact-store.js'
import { LocalStore } from './local-store.js'

/** The store the configuration names; the S3 client is loaded only when used. */
export async function openArtifactStore (config: Config): Promise<ArtifactStore> {
  const spec = config.storage.artifacts
  if (spec.kind === 'local') return new LocalStore(resolve(spec.path ?? join(config.dataDir, 'store')))
  const { S3Store } = await import('./s3-store.js')
  return new S3Store({
    endpoint: spec.endpoint,
    region: spec.region,
    bucket: spec.bucket,
    prefix: spec.prefix,
    forcePathStyle: spec.forcePathStyle,
    credentials: spec.accessKeyId && spec.secretAccessKey
      ? { accessKeyId: spec.accessKeyId, secretAccessKey: spec.secretAccessKey }
      : undefined,
    partSizeBytes: spec.partSizeBytes,
    requestTimeoutMs: spec.requestTimeoutMs
  })
}
