import { writeFile } from 'node:fs/promises'
import { API_TYPES, apiTypes } from './api-types.js'

// npm run api-types: regenerates src/cli/api-types.ts from api/openapi.json.
// test/cli/api-types.test.ts fails when the committed file differs.
await writeFile(API_TYPES, await apiTypes())
console.log('wrote src/cli/api-types.ts')
