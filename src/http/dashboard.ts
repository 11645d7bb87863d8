import type { FastifyReply } from 'fastify'
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { readFile } from 'node:fs/promises'
import { z } from 'zod'

// The dashboard: one HTML shell for every page and the bundle that
// `npm run build:dashboard` writes to dist/dashboard/ (from web/). The pages
// hold no data; the bundle reads the JSON API with the caller's token, so
// these routes are public. Nothing is loaded from elsewhere, and the CSP
// says so to the browser.

const BUNDLE = new URL('../../dist/dashboard/', import.meta.url)
const FILES = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.js.map': 'application/json',
  'app.css': 'text/css; charset=utf-8'
} as const

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
  "connect-src 'self'", "frame-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'"
].join('; ')

const SHELL = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cosa-buildd</title>
<link rel="stylesheet" href="/assets/app.css">
<script type="module" src="/assets/app.js"></script>
</head>
<body><div id="app"><p>Loading… (the dashboard needs JavaScript)</p></div></body>
</html>
`

const PAGES = ['/', '/token', '/builds', '/builds/:id', '/streams/:stream']

function secure (reply: FastifyReply) {
  return reply
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache')
}

const dashboard: FastifyPluginAsyncZod<{ bundle?: URL }> = async (app, opts) => {
  const bundle = opts.bundle ?? BUNDLE
  for (const url of PAGES) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) => secure(reply).type('text/html; charset=utf-8').send(SHELL))
  }
  app.get('/assets/:file', {
    schema: { hide: true, params: z.object({ file: z.enum(Object.keys(FILES) as [keyof typeof FILES]) }) }
  }, async (request, reply) => {
    const { file } = request.params
    const body = await readFile(new URL(file, bundle)).catch(() => undefined)
    // A server run from a checkout without `npm run build`: say what to do.
    if (body === undefined) {
      return secure(reply).code(503).type('text/plain; charset=utf-8').send('the dashboard is not built: run npm run build:dashboard\n')
    }
    return secure(reply).type(FILES[file]).send(body)
  })
}

export default dashboard
