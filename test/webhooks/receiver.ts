import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { Webhook } from 'standardwebhooks'

// A real webhook receiver on 127.0.0.1. Every request is verified with the
// standardwebhooks package before anything else looks at it, and its body
// checked as a CloudEvents 1.0 JSON object; a request that fails either is
// kept in `rejected`, which the tests expect to be empty.

export interface Received {
  id: string
  timestamp: number
  event: {
    specversion: string
    id: string
    source: string
    type: string
    subject: string
    time: string
    datacontenttype: string
    data: { id: string, stream: string, state: string, [k: string]: unknown }
  }
  headers: IncomingHttpHeaders
  /** When it arrived (ms since the epoch). */
  arrivedAt: number
}

const CE_FIELDS = ['specversion', 'id', 'source', 'type', 'subject', 'time', 'datacontenttype', 'data'] as const

export interface Receiver {
  url: string
  received: Received[]
  rejected: string[]
  /** How many requests arrived, verified or not. */
  hits: () => number
  setSecret: (secret: string) => void
  /** The status to answer each request with (default 204). */
  answer: (fn: (r: Received, n: number) => number) => void
  close: () => Promise<void>
}

export async function startReceiver (t: Test, path = '/hook'): Promise<Receiver> {
  let verifier: Webhook | undefined
  let status = (_r: Received, _n: number) => 204
  let hits = 0
  const received: Received[] = []
  const rejected: string[] = []
  const server = createServer((req, res) => {
    hits++
    let body = ''
    req.setEncoding('utf8').on('data', (c: string) => { body += c }).on('end', () => {
      try {
        if (!verifier) throw new Error('no secret set')
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]))
        const event = verifier.verify(body, headers) as Received['event']
        for (const f of CE_FIELDS) if (event[f] === undefined) throw new Error(`CloudEvent without ${f}`)
        if (event.specversion !== '1.0' || req.headers['content-type'] !== 'application/json') throw new Error('not a CloudEvents 1.0 JSON body')
        const r: Received = { id: headers['webhook-id']!, timestamp: Number(headers['webhook-timestamp']), event, headers: req.headers, arrivedAt: Date.now() }
        received.push(r)
        res.writeHead(status(r, received.length)).end()
      } catch (err) {
        rejected.push(`${(err as Error).message}: ${body.slice(0, 200)}`)
        res.writeHead(400).end()
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const close = () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  t.teardown(close)
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`,
    received,
    rejected,
    hits: () => hits,
    setSecret: (secret) => { verifier = new Webhook(secret) },
    answer: (fn) => { status = fn },
    close
  }
}
