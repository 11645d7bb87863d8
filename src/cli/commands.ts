import { basename } from 'node:path'
import { buildCommands } from './build-commands.js'
import type { Command } from './command.js'
import { downloadArtifact } from './download.js'
import { EXIT } from './exit.js'
import { streamCommands } from './stream-commands.js'
import { getBuild } from './watch.js'

const serve: Command = {
  name: 'serve',
  args: [],
  usage: 'serve',
  summary: 'run the server (settings from the environment, see docs/configuration.md)',
  options: {},
  run: async () => {
    const { main } = await import('../server.js')
    await main()
    // Listening: the process now lives until a signal stops the server.
    return new Promise<number>(() => undefined)
  }
}

const artifactDownload: Command = {
  name: 'artifact download',
  args: ['ID', 'NAME'],
  usage: 'artifact download ID NAME [-o FILE]',
  summary: 'download an artifact, resuming FILE.part, and check its sha256',
  options: { output: { type: 'string', short: 'o' } },
  run: async (ctx) => {
    const api = ctx.api()
    const [id, name] = ctx.args as [string, string]
    const build = await getBuild(api, id)
    const path = build.result?.artifacts.find((a) => a.name === name)?.path
    const file = (ctx.values.output as string | undefined) ?? (path ? basename(path) : name)
    const size = await downloadArtifact(api, build, name, file)
    ctx.io.err.write(`downloaded ${name} to ${file} (${size} bytes, sha256 verified)\n`)
    return EXIT.ok
  }
}

export const COMMANDS: Command[] = [serve, ...buildCommands, ...streamCommands, artifactDownload]
