import { join } from 'node:path'
import { flag, int, list, str } from './args.js'
import { call, type Api, type Build } from './client.js'
import { JSON_OPTION, type Command, type Context } from './command.js'
import { downloadArtifact } from './download.js'
import { EXIT, exitFor } from './exit.js'
import { printBuild, printBuilds, progressOf } from './output.js'
import { waitForBuild } from './wait.js'
import { getBuild, streamLog } from './watch.js'

const byId = (id: string) => ({ params: { path: { id } } })

async function submitRequest (ctx: Context) {
  const api = ctx.api()
  const [stream] = ctx.args as [string]
  const key = str(ctx.values, 'idempotency-key')
  const platforms = list(ctx.values, 'platform')
  const { data } = await call(api, `submit a build of ${stream}`, () => api.client.POST('/v1/streams/{stream}/builds', {
    params: { path: { stream }, header: key === undefined ? {} : { 'idempotency-key': key } },
    body: {
      force: flag(ctx.values, 'force'),
      ...(str(ctx.values, 'version') === undefined ? {} : { version: str(ctx.values, 'version') }),
      ...(platforms.length ? { platforms } : {})
    }
  }))
  return data
}

async function downloadAll (ctx: Context, api: Api, build: Build) {
  const dir = str(ctx.values, 'output') ?? '.'
  for (const name of list(ctx.values, 'download')) {
    const file = join(dir, build.result?.artifacts.find((a) => a.name === name)?.path.split('/').pop() ?? name)
    const size = await downloadArtifact(api, build, name, file)
    progressOf(ctx.io).write(`downloaded ${name} to ${file} (${size} bytes, sha256 verified)\n`)
  }
}

async function submit (ctx: Context) {
  const api = ctx.api()
  const build = await submitRequest(ctx)
  const downloads = list(ctx.values, 'download').length > 0
  if (!flag(ctx.values, 'wait') && !flag(ctx.values, 'follow') && !downloads) {
    if (ctx.io.json) printBuild(ctx.io, api, build)
    else ctx.io.out.write(build.id + '\n')
    return EXIT.ok
  }
  progressOf(ctx.io).write(`build ${build.id}: ${api.link(`/v1/builds/${build.id}`)}\n`)
  const final = await waitForBuild(api, ctx.io, build, {
    follow: flag(ctx.values, 'follow'), cancelOnInterrupt: flag(ctx.values, 'cancel-on-interrupt')
  })
  if (!final) return EXIT.interrupted
  printBuild(ctx.io, api, final)
  const status = exitFor(final.state)
  if (status === EXIT.ok && downloads) await downloadAll(ctx, api, final)
  return status
}

async function log (ctx: Context) {
  const api = ctx.api()
  const build = await getBuild(api, ctx.args[0]!)
  if (!flag(ctx.values, 'follow')) {
    await streamLog(api, build.id, 0, false, ctx.io.out)
    return EXIT.ok
  }
  const final = await waitForBuild(api, { ...ctx.io, json: false }, build, { follow: true, cancelOnInterrupt: false })
  if (!final) return EXIT.interrupted
  ctx.io.err.write(`build ${final.id} ${final.state}\n`)
  return exitFor(final.state)
}

async function listBuilds (ctx: Context) {
  const api = ctx.api()
  const limit = int(ctx.values, 'limit')
  const stream = str(ctx.values, 'stream')
  const states = list(ctx.values, 'state')
  const pages = await Promise.all((states.length ? states : [undefined]).map(async (state) => (await call(api, 'list builds', () =>
    api.client.GET('/v1/builds', { params: { query: { stream, state: state as Build['state'] | undefined, limit } } }))).data.builds))
  const builds = pages.flat().sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, limit ?? Infinity)
  printBuilds(ctx.io, builds)
  return EXIT.ok
}

/** get, cancel, pin, unpin: one call, the build printed. */
function oneBuild (verb: string, request: (api: Api, id: string) => Promise<{ data?: Build, error?: unknown, response: Response }>) {
  return async (ctx: Context) => {
    const api = ctx.api()
    const { data } = await call(api, `${verb} build ${ctx.args[0]}`, () => request(api, ctx.args[0]!))
    printBuild(ctx.io, api, data)
    return EXIT.ok
  }
}

export const buildCommands: Command[] = [
  {
    name: 'build submit',
    args: ['STREAM'],
    usage: 'build submit STREAM [--force] [--version V] [--platform P]... [--idempotency-key K] [--wait] [--follow] ' +
      '[--cancel-on-interrupt] [--download NAME]... [--output DIR] [--json]',
    summary: 'queue a build; --wait/--follow watch it to its end, --download fetches artifacts',
    options: {
      force: { type: 'boolean' },
      version: { type: 'string' },
      platform: { type: 'string', multiple: true },
      'idempotency-key': { type: 'string' },
      wait: { type: 'boolean', short: 'w' },
      follow: { type: 'boolean', short: 'f' },
      'cancel-on-interrupt': { type: 'boolean' },
      download: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o' },
      ...JSON_OPTION
    },
    run: submit
  },
  {
    name: 'build get', args: ['ID'], usage: 'build get ID [--json]', summary: 'a build\'s state and result', options: JSON_OPTION,
    run: oneBuild('get', (api, id) => api.client.GET('/v1/builds/{id}', byId(id)))
  },
  {
    name: 'build cancel', args: ['ID'], usage: 'build cancel ID [--json]', summary: 'cancel a build', options: JSON_OPTION,
    run: oneBuild('cancel', (api, id) => api.client.POST('/v1/builds/{id}/cancel', byId(id)))
  },
  {
    name: 'build pin', args: ['ID'], usage: 'build pin ID [--json]', summary: 'keep a build from retention', options: JSON_OPTION,
    run: oneBuild('pin', (api, id) => api.client.PUT('/v1/builds/{id}/pin', byId(id)))
  },
  {
    name: 'build unpin', args: ['ID'], usage: 'build unpin ID [--json]', summary: 'let retention prune a build', options: JSON_OPTION,
    run: oneBuild('unpin', (api, id) => api.client.DELETE('/v1/builds/{id}/pin', byId(id)))
  },
  {
    name: 'build list',
    args: [],
    usage: 'build list [--stream S] [--state S]... [--limit N] [--json]',
    summary: 'builds, newest first',
    options: { stream: { type: 'string' }, state: { type: 'string', multiple: true }, limit: { type: 'string' }, ...JSON_OPTION },
    run: listBuilds
  },
  {
    name: 'build log',
    args: ['ID'],
    usage: 'build log ID [-f]',
    summary: 'a build\'s log; -f follows it to the build\'s end and exits with its outcome',
    options: { follow: { type: 'boolean', short: 'f' } },
    run: log
  }
]
