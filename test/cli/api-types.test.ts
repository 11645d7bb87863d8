import { readFile } from 'node:fs/promises'
import t from 'tap'
import { API_TYPES, apiTypes } from '../../scripts/api-types.js'

t.test('src/cli/api-types.ts is what the generator makes of api/openapi.json', async (t) => {
  const committed = await readFile(API_TYPES, 'utf8')
  t.ok(committed === await apiTypes(), 'run `npm run api-types` after `npm run openapi`')
})
