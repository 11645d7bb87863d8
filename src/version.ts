import { readFileSync } from 'node:fs'

/** The package's version: the OpenAPI document's and the metrics' build_info. */
export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
