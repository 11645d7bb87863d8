#!/usr/bin/env node
import { run } from './cli/main.js'

// The cosa-buildd executable: `cosa-buildd serve` and the API's client (docs/cli.md).

run(process.argv.slice(2), { out: process.stdout, err: process.stderr }).then((status) => {
  process.exitCode = status
}, (err: unknown) => {
  console.error(err instanceof Error ? err.stack : err)
  process.exitCode = 70
})
