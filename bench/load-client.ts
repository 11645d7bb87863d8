// Runs autocannon in its own process (the servers keep their own core) and
// prints the result as JSON. argv[2]: {url, method?, body?, headers?, keys?, duration}.
// With `keys`, every request carries an Idempotency-Key cycling through that many.
import autocannon from 'autocannon'

const opts = JSON.parse(process.argv[2]!)
let n = 0
const result = await autocannon({
  url: opts.url,
  connections: opts.connections ?? 50,
  duration: opts.duration,
  method: opts.method ?? 'GET',
  headers: { ...(opts.body ? { 'content-type': 'application/json' } : {}), ...opts.headers },
  body: opts.body,
  requests: opts.keys
    ? [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, 'idempotency-key': `key-${n++ % opts.keys}` } }) }]
    : undefined
})
process.stdout.write(JSON.stringify({
  rps: result.requests.average,
  p50: result.latency.p50,
  p99: result.latency.p99,
  non2xx: result.non2xx,
  errors: result.errors,
  total: result.requests.total
}))
