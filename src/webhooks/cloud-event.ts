import { randomBytes } from 'node:crypto'
import type { BuildEvent } from '../builds/build-event.js'
import type { NewDelivery } from './model.js'

// A delivery's body: a CloudEvents 1.0 JSON object (structured mode). Its id
// is the outbox sequence number, the same for every webhook that gets the
// event; `source` names the stream, `subject` the build.

export const CLOUD_EVENT_TYPE_PREFIX = 'io.cosa-buildd.'

export function cloudEvent (event: BuildEvent) {
  return {
    specversion: '1.0',
    id: String(event.seq),
    source: `/v1/streams/${event.stream}`,
    type: CLOUD_EVENT_TYPE_PREFIX + event.type,
    subject: event.buildId,
    time: event.time,
    datacontenttype: 'application/json',
    data: event.build
  }
}

export const newDeliveryId = () => 'msg_' + randomBytes(16).toString('base64url')

export const toDelivery = (event: BuildEvent): NewDelivery => ({
  id: newDeliveryId(),
  eventSeq: event.seq,
  type: event.type,
  buildId: event.buildId,
  body: JSON.stringify(cloudEvent(event))
})
