import { readFile } from 'node:fs/promises'
import { flag, int, list, str } from './args.js'
import { call } from './client.js'
import { JSON_OPTION, type Command, type Context } from './command.js'
import { CliError, EXIT, usageError } from './exit.js'
import { printJson, printStream } from './output.js'

type Registration = Record<string, unknown> & { config?: { url?: string, ref?: string } }

async function readRegistration (file: string): Promise<Registration> {
  try {
    return JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw new CliError(`cannot read the stream from ${file}: ${(err as Error).message}; give a JSON file like ` +
      'the body of PUT /v1/streams/{stream} (docs/api.md)', EXIT.usage)
  }
}

/** The registration: --file, with the other options on top of it. */
async function registration (ctx: Context): Promise<Registration> {
  const file = str(ctx.values, 'file')
  const body = file === undefined ? {} : await readRegistration(file)
  const url = str(ctx.values, 'url') ?? body.config?.url
  const ref = str(ctx.values, 'ref') ?? body.config?.ref
  if (url === undefined || ref === undefined) {
    throw usageError('stream put needs the config repository: --url URL --ref REF, or --file stream.json')
  }
  const platforms = list(ctx.values, 'platform')
  const extra = {
    image: str(ctx.values, 'image'),
    platforms: platforms.length ? platforms : undefined,
    timeoutSeconds: int(ctx.values, 'timeout'),
    keep: int(ctx.values, 'keep'),
    publicRead: flag(ctx.values, 'public-read') || undefined
  }
  return { ...body, config: { url, ref }, ...Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)) }
}

export const streamCommands: Command[] = [
  {
    name: 'stream put',
    args: ['NAME'],
    usage: 'stream put NAME (--file stream.json | --url URL --ref REF) [--image I] [--platform P]... ' +
      '[--timeout SECONDS] [--keep N] [--public-read] [--json]',
    summary: 'register or update a stream (admin); here --url is the config repository\'s',
    options: {
      file: { type: 'string' },
      url: { type: 'string' },
      ref: { type: 'string' },
      image: { type: 'string' },
      platform: { type: 'string', multiple: true },
      timeout: { type: 'string' },
      keep: { type: 'string' },
      'public-read': { type: 'boolean' },
      ...JSON_OPTION
    },
    run: async (ctx) => {
      const api = ctx.api()
      const name = ctx.args[0]!
      const body = await registration(ctx)
      const { data } = await call(api, `register stream ${name}`, () =>
        api.client.PUT('/v1/streams/{stream}', { params: { path: { stream: name } }, body: body as never }))
      printStream(ctx.io, data)
      for (const warning of data.warnings ?? []) ctx.io.err.write(`warning: ${warning}\n`)
      return EXIT.ok
    }
  },
  {
    name: 'stream get',
    args: ['NAME'],
    usage: 'stream get NAME [--json]',
    summary: 'a stream and its latest build',
    options: JSON_OPTION,
    run: async (ctx) => {
      const api = ctx.api()
      const { data } = await call(api, `get stream ${ctx.args[0]}`, () =>
        api.client.GET('/v1/streams/{stream}', { params: { path: { stream: ctx.args[0]! } } }))
      printStream(ctx.io, data)
      return EXIT.ok
    }
  },
  {
    name: 'stream list',
    args: [],
    usage: 'stream list [--json]',
    summary: 'streams with their latest builds',
    options: JSON_OPTION,
    run: async (ctx) => {
      const api = ctx.api()
      const { data } = await call(api, 'list streams', () => api.client.GET('/v1/streams'))
      if (ctx.io.json) printJson(ctx.io, data)
      else for (const stream of data.streams) printStream(ctx.io, stream)
      return EXIT.ok
    }
  }
]
