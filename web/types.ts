import type { components } from '../src/cli/api-types.js'

// The API's types as the dashboard uses them (no DOM here: tests import it).

export type Build = components['schemas']['Build'] & {
  /** Announced by the event-stream work: rendered when the server sends them. */
  phase?: string
  failedStep?: string
}
export type Stream = components['schemas']['Stream']
export interface BuildList { builds: Build[], nextCursor?: string }
