import openapiTS, { astToString, COMMENT_HEADER, type OpenAPI3 } from 'openapi-typescript'
import { readFile } from 'node:fs/promises'

export const API_DOCUMENT = new URL('../api/openapi.json', import.meta.url)
export const API_TYPES = new URL('../src/cli/api-types.ts', import.meta.url)

/** The client's types, made from the committed OpenAPI document (the one the server serves). */
export async function apiTypes () {
  const doc = JSON.parse(await readFile(API_DOCUMENT, 'utf8')) as OpenAPI3
  return COMMENT_HEADER + astToString(await openapiTS(doc))
}
