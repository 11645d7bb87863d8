import openapiTS, { astToString, COMMENT_HEADER, type OpenAPI3 } from 'openapi-typescript'
import { readFile } from 'node:fs/promises'

export const API_DOCUMENT = new URL('../api/openapi.json', import.meta.url)
export const API_TYPES = new URL('../src/cli/api-types.ts', import.meta.url)

/**
 * cosa's meta.json schema sits in the document with its own `definitions`,
 * whose `#/definitions/…` references do not resolve in an OpenAPI document
 * and which the generator refuses. They become `CosaMeta.<name>` components;
 * a document that already has them so is left as it is.
 */
function hoistCosaDefinitions (text: string): OpenAPI3 {
  const doc = JSON.parse(text.replaceAll('"#/definitions/', '"#/components/schemas/CosaMeta.'))
  const schemas = doc.components?.schemas ?? {}
  const { definitions, ...cosaMeta } = schemas.CosaMeta ?? {}
  if (!definitions) return doc
  schemas.CosaMeta = cosaMeta
  for (const [name, schema] of Object.entries(definitions)) schemas[`CosaMeta.${name}`] = schema
  return doc
}

/** The client's types, made from the committed OpenAPI document. */
export async function apiTypes () {
  const doc = hoistCosaDefinitions(await readFile(API_DOCUMENT, 'utf8'))
  return COMMENT_HEADER + astToString(await openapiTS(doc))
}
