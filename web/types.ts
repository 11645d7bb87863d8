import { eventTypes, type BuildEvent as ServerEvent, type BuildEventType } from '../src/builds/build-event.js'
import type { components } from '../src/cli/api-types.js'

// The API's types as the dashboard uses them (no DOM here: tests import it).

export type Build = components['schemas']['Build']
export type Stream = components['schemas']['Stream']
export interface BuildList { builds: Build[], nextCursor?: string }

export { eventTypes, type BuildEventType }

/** One message of GET /v1/events (docs/events.md), its build as the API's schema types it. */
export type BuildEvent = Omit<ServerEvent, 'build'> & { build: Build }
