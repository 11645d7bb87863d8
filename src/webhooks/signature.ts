import { createHmac, randomBytes } from 'node:crypto'

// Standard Webhooks signing (https://www.standardwebhooks.com): the secret is
// `whsec_` and base64 bytes; the signature is the HMAC-SHA256, keyed with
// those bytes, of "id.timestamp.body", sent as "v1,<base64>".

const PREFIX = 'whsec_'

export const newSecret = () => PREFIX + randomBytes(32).toString('base64')

export function sign (secret: string, id: string, timestamp: number, body: string) {
  const key = Buffer.from(secret.slice(PREFIX.length), 'base64')
  return 'v1,' + createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')
}

/** The headers of one attempt; the timestamp is the attempt's (receivers refuse old ones). */
export function signedHeaders (secret: string, id: string, body: string, at: Date) {
  const timestamp = Math.floor(at.getTime() / 1000)
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': sign(secret, id, timestamp, body)
  }
}
