import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { LookupFunction } from 'node:net'
import { isPublicAddress } from '../git/config-url.js'

// One POST to a receiver. No redirect is followed (node:http never does;
// a 3xx is an answer like any other non-2xx). When private hosts are not
// allowed, the address the connection uses is checked as it is resolved, so
// a name that turned private after the policy check (DNS rebinding) is
// refused too.

export interface SendResult {
  statusCode?: number | undefined
  error?: string | undefined
}

export type Send = (url: string, headers: Record<string, string>, body: string, signal: AbortSignal) => Promise<SendResult>

/** What a receiver may answer: read and dropped, never more than this. */
const MAX_ANSWER_BYTES = 64 * 1024

const publicOnly: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 4)
    if (addresses.some((a) => !isPublicAddress(a.address))) {
      return callback(new Error(`${hostname} resolves to a non-public address`), '', 4)
    }
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses)
    callback(null, addresses[0]!.address, addresses[0]!.family)
  })
}

function drain (res: IncomingMessage, resolve: (r: SendResult) => void) {
  let seen = 0
  res.on('data', (chunk: Buffer) => {
    seen += chunk.length
    if (seen > MAX_ANSWER_BYTES) res.destroy()
  })
  res.on('close', () => resolve({ statusCode: res.statusCode }))
  res.on('error', () => resolve({ statusCode: res.statusCode }))
}

export function httpSender (opts: { allowPrivateHosts: boolean, userAgent: string }): Send {
  return (url, headers, body, signal) => new Promise((resolve) => {
    const target = new URL(url)
    const request = target.protocol === 'https:' ? httpsRequest : httpRequest
    const req = request(target, {
      method: 'POST',
      signal,
      ...(opts.allowPrivateHosts ? {} : { lookup: publicOnly }),
      headers: { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'user-agent': opts.userAgent }
    }, (res) => drain(res, resolve))
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = signal.aborted ? String(signal.reason?.message ?? 'aborted') : err.code ? `${err.code}: ${err.message}` : err.message
      resolve({ error: why })
    })
    req.end(body)
  })
}
