import { createConnection, createServer, type Socket } from 'node:net'

// A TCP proxy on loopback that can turn hostile: with `cutAfter` set, a
// connection that sends more than that many bytes upstream is reset, as a
// network that drops mid-upload does. Small requests still pass.

export interface FaultProxy {
  url: string
  /** Bytes one connection may send upstream before it is cut; undefined passes all. */
  cutAfter: number | undefined
  cuts: number
  /** Cuts every open connection, as a network that drops does; new ones pass. */
  drop(): void
  close(): Promise<void>
}

export async function startFaultProxy (target: { host: string, port: number }, t?: { teardown(fn: () => unknown): void }) {
  const sockets = new Set<Socket>()
  const proxy: FaultProxy = {
    url: '',
    cutAfter: undefined,
    cuts: 0,
    drop: () => { for (const s of sockets) s.destroy() },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  }
  const server = createServer((client) => {
    const upstream = createConnection(target)
    sockets.add(client).add(upstream)
    let sent = 0
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length
      if (proxy.cutAfter !== undefined && sent > proxy.cutAfter) {
        proxy.cuts++
        client.resetAndDestroy()
        upstream.destroy()
        return
      }
      upstream.write(chunk)
    })
    upstream.pipe(client)
    const end = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('close', end).on('error', end)
    upstream.on('close', end).on('error', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  t?.teardown(() => proxy.close())
  return proxy
}
