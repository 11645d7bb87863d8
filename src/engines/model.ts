import type { EngineSettings } from '../config.js'

/** An engine as the service keeps it: its settings, where they come from, and whether it is draining. */
export interface EngineRecord extends EngineSettings {
  /** config: the config file's, written again at each start (PUT and DELETE refuse it); api: added by an admin. */
  source: 'config' | 'api'
  /** Takes no new builds; running ones finish. */
  draining: boolean
  createdAt: string
  updatedAt: string
}
