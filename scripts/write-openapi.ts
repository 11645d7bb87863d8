import { writeFile } from 'node:fs/promises'
import { openapiDocument } from './openapi-document.js'

// npm run openapi: regenerates api/openapi.json from the routes' schemas.
// test/api/openapi.test.ts fails when the committed file differs.
const doc = await openapiDocument()
await writeFile(new URL('../api/openapi.json', import.meta.url), JSON.stringify(doc, null, 2) + '\n')
console.log('wrote api/openapi.json')
