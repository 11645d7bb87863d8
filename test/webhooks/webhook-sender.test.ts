import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { httpSender } from '../../src/webhooks/webhook-sender.js'

// The sender on real sockets: no redirect is followed, and without
// allowPrivateHosts a name that resolves to loopback is refused when it is
// resolved for the connection (after the policy check, e.g. DNS rebinding).

async function server (t: Test, answer: (url: string) => [number, Record<string, string>]) {
  const urls: string[] = []
  const s = createServer((req, res) => {
    urls.push(req.url!)
    const [status, headers] = answer(req.url!)
    req.resume().on('end', () => res.writeHead(status, headers).end('answer'))
  })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => s.close(() => resolve())))
  return { port: (s.address() as AddressInfo).port, urls }
}

t.test('a redirect is an answer, not followed', async (t) => {
  const s = await server(t, (url) => url === '/hook' ? [302, { location: '/elsewhere' }] : [204, {}])
  const send = httpSender({ allowPrivateHosts: true, userAgent: 'test' })
  const result = await send(`http://127.0.0.1:${s.port}/hook`, {}, '{}', AbortSignal.timeout(5000))
  t.same(result, { statusCode: 302 })
  t.same(s.urls, ['/hook'], 'only the webhook URL was asked')
})

t.test('without allowPrivateHosts, a name resolving to loopback is refused at connect', async (t) => {
  const s = await server(t, () => [204, {}])
  const guarded = httpSender({ allowPrivateHosts: false, userAgent: 'test' })
  const refused = await guarded(`http://localhost:${s.port}/hook`, {}, '{}', AbortSignal.timeout(5000))
  t.match(refused.error, /localhost resolves to a non-public address/)
  t.same(s.urls, [], 'nothing reached the receiver')
  const open = httpSender({ allowPrivateHosts: true, userAgent: 'test' })
  t.same(await open(`http://localhost:${s.port}/hook`, {}, '{}', AbortSignal.timeout(5000)), { statusCode: 204 }, 'allowed: delivered')
})

t.test('a receiver that does not answer in time is cut off', async (t) => {
  const s = createServer(() => { /* never answers */ })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const send = httpSender({ allowPrivateHosts: true, userAgent: 'test' })
  const started = Date.now()
  const result = await send(`http://127.0.0.1:${(s.address() as AddressInfo).port}/`, {}, '{}', AbortSignal.timeout(300))
  t.ok(result.error, `an error: ${result.error}`)
  t.ok(Date.now() - started < 2000, 'within about the timeout')
})
