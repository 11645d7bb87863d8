import { build } from 'esbuild'
import { execa } from 'execa'
import { copyFile, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Typechecks the dashboard's sources (browser code: their own tsconfig, with
// the DOM library) and bundles them into dist/dashboard/, which
// src/http/dashboard.ts serves. Run by `npm run build`, before `npm start`,
// and by the browser test itself (so a fresh clone's `npm test` has it).

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const DASHBOARD_OUT = join(ROOT, 'dist', 'dashboard')

export async function buildDashboard () {
  await execa('npx', ['tsc', '-p', join(ROOT, 'web', 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' })
  await mkdir(DASHBOARD_OUT, { recursive: true })
  await build({
    entryPoints: [join(ROOT, 'web', 'main.tsx')],
    bundle: true,
    minify: true,
    sourcemap: 'linked',
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outfile: join(DASHBOARD_OUT, 'app.js'),
    logLevel: 'warning'
  })
  await copyFile(join(ROOT, 'web', 'app.css'), join(DASHBOARD_OUT, 'app.css'))
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildDashboard()
