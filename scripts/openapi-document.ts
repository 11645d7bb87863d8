import Fastify from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import app from '../src/app.js'
import { loadConfig } from '../src/config.js'

/** The OpenAPI document the server serves, made without starting it. */
export async function openapiDocument () {
  const dataDir = await mkdtemp(join(tmpdir(), 'cosa-buildd-openapi-'))
  const fastify = Fastify({ logger: false })
  try {
    await fastify.register(app, { config: loadConfig({}, { dataDir, logLevel: 'silent' }), background: false })
    await fastify.ready()
    return fastify.swagger()
  } finally {
    await fastify.close()
    await rm(dataDir, { recursive: true, force: true })
  }
}
