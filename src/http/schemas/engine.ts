import { z } from 'zod'
import { ENGINE_NAME, engineFields } from '../../config.js'
import { Timestamp } from './common.js'

export const EngineName = ENGINE_NAME

export const EngineInput = engineFields.meta({
  id: 'EngineRegistration',
  description: 'the same fields as an entry of the config file\'s `engines` (docs/engines.md)'
})

export const Engine = z.object({
  name: z.string(),
  host: z.string().meta({ description: 'unix:///path or tcp://host:port' }),
  tls: z.boolean().meta({ description: 'reached over mutual TLS; the certificate paths are not shown' }),
  arch: z.string().optional()
    .meta({ description: 'the basearch builds run as there: the configured one, or the engine\'s own once it answered' }),
  capacity: z.number().int().meta({ description: 'builds it runs at once, at most' }),
  labels: z.record(z.string(), z.string()),
  source: z.enum(['config', 'api']).meta({ description: 'config: from the configuration file (PUT and DELETE refuse it); api: added with PUT' }),
  draining: z.boolean().meta({ description: 'takes no new builds; those it runs finish there' }),
  runningBuilds: z.number().int(),
  reachable: z.boolean().meta({ description: 'answered the last probe (made for this answer, bounded to 5 s)' }),
  dockerVersion: z.string().optional(),
  lastError: z.string().optional().meta({ description: 'what the engine last answered wrong (it may be reachable again since)' }),
  lastErrorAt: Timestamp.optional(),
  checkedAt: Timestamp.optional(),
  createdAt: Timestamp,
  updatedAt: Timestamp
}).meta({ id: 'Engine' })

export const EngineList = z.object({ engines: z.array(Engine) })
