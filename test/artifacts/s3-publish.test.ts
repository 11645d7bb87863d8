import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { randomBytes, createHash } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { startFaultProxy } from '../fault-proxy.js'
import { buildOnce, configRepo, register, requireDocker, startApp } from '../helpers.js'
import { S3RVER_CREDENTIALS, startS3 } from '../s3-server.js'

// Publishing to an S3-compatible server on loopback (s3rver), through a proxy
// that can cut uploads: a failed multipart upload leaves nothing visible, and
// the build after it publishes what the failed one could not.

t.test('builds publish to S3 in cosa\'s layout; a cut upload fails the build and leaves no object', async (t) => {
  if (!await requireDocker(t)) return
  const s3 = await startS3(t)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) }, t)
  const h = await startApp(t, {
    storage: {
      minFreeBytes: 0,
      artifacts: {
        kind: 's3', bucket: s3.bucket, prefix: 'prod/streams', endpoint: proxy.url, forcePathStyle: true,
        ...S3RVER_CREDENTIALS, partSizeBytes: 5 * 1024 ** 2, requestTimeoutMs: 10_000
      }
    }
  })
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: S3RVER_CREDENTIALS })
  t.teardown(() => client.destroy())
  const keys = async () => ((await client.send(new ListObjectsV2Command({ Bucket: s3.bucket }))).Contents ?? [])
    .map((o) => o.Key!).sort()

  // 12 MiB that does not compress: the images are multipart uploads.
  const repo = await configRepo(t)
  await mkdir(join(repo.dir, 'overlay.d/20-blob/usr/share'), { recursive: true })
  await writeFile(join(repo.dir, 'overlay.d/20-blob/usr/share/blob'), randomBytes(12 * 1024 ** 2))
  await repo.commit('overlay.d/10-motd/usr/etc/motd', 'with a blob\n')
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' } })

  proxy.cutAfter = 1024 ** 2
  const cut = await buildOnce(h, 'minimal')
  t.equal(cut.state, 'failed', 'a cut upload fails the build')
  t.equal(cut.reason, 'publish_failed')
  t.match(cut.message, /publishing build .* failed/)
  t.ok(proxy.cuts > 0, 'the proxy cut uploads')
  t.same(await keys(), [], 'nothing is visible in the bucket')

  proxy.cutAfter = undefined
  const next = await buildOnce(h, 'minimal')
  t.equal(next.state, 'succeeded', `the next build makes the build again and publishes it: ${next.message ?? ''}`)
  t.equal(next.result.cosaBuildId, cut.result.cosaBuildId, 'with the id the cut publish could not store: the store never listed it')
  const id = next.result.cosaBuildId
  const dir = `prod/streams/minimal/builds/${id}/x86_64/`
  const meta = JSON.parse((await h.app.inject({ url: `/v1/builds/${next.id}/meta.json` })).body)
  t.same(await keys(), [
    'prod/streams/minimal/builds/builds.json',
    ...['commitmeta.json', 'meta.json', 'ostree-commit-object', meta.images.ostree.path, meta.images.qemu.path].map((f) => dir + f)
  ].sort(), 'cosa\'s bucket layout under the prefix')
  for (const a of next.result.artifacts) {
    t.equal(a.location, `s3://${s3.bucket}/${dir}${a.path.split('/').pop()}`)
    const res = await h.app.inject({ url: a.url })
    t.equal(res.statusCode, 200)
    t.equal(createHash('sha256').update(res.rawPayload).digest('hex'), a.sha256, `${a.name} downloads with its sha256`)
    const part = await h.app.inject({ url: a.url, headers: { range: 'bytes=5242870-5242889' } })
    t.equal(part.statusCode, 206)
    t.same(part.rawPayload, res.rawPayload.subarray(5242870, 5242890), 'a range across a part boundary')
  }
  const index = (await h.app.inject({ url: '/v1/streams/minimal/builds/builds.json' })).json()
  t.same(index.builds, [{ id, arches: ['x86_64'] }])

  await rm(join(h.dataDir, 'streams/minimal/work'), { recursive: true, force: true })
  const fresh = await buildOnce(h, 'minimal')
  t.equal(fresh.state, 'unchanged', 'a fresh workdir syncs from S3 and finds nothing changed')
  t.equal(fresh.result.cosaBuildId, id)
})
