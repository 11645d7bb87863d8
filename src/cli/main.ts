import { parseCommand, type CommandSpec } from './args.js'
import { connect, DEFAULT_URL } from './client.js'
import { COMMANDS } from './commands.js'
import { CliError, EXIT } from './exit.js'
import type { Io } from './output.js'

function overview () {
  const width = Math.max(...COMMANDS.map((c) => c.name.length))
  return [
    'usage: cosa-buildd [--url URL] [--token TOKEN] COMMAND [ARGS] [OPTIONS]',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    `The server: --url or COSA_BUILDD_URL (default ${DEFAULT_URL}); its token: --token or COSA_BUILDD_TOKEN.`,
    'Exit status: 0 succeeded or unchanged, 1 failed, 2 usage, 3 cancelled, 4 refused by the API or unreachable,',
    '5 a download that did not verify, 130 stopped watching (Ctrl-C). docs/cli.md has the details.'
  ].join('\n') + '\n'
}

const commandHelp = (spec: CommandSpec) =>
  `usage: cosa-buildd ${spec.usage}\n\n${spec.summary}\n\nRun cosa-buildd --help for the server options and exit statuses.\n`

/** Runs one command line; resolves with the exit status. */
export async function run (argv: string[], io: Omit<Io, 'json'>): Promise<number> {
  if (argv.length === 0) {
    io.err.write(overview())
    return EXIT.usage
  }
  try {
    const parsed = parseCommand(argv, COMMANDS)
    if ('help' in parsed) {
      io.out.write(parsed.help ? commandHelp(parsed.help) : overview())
      return EXIT.ok
    }
    const { spec, args, values, leading } = parsed
    // stream put's --url is the config repository's, so the server's then comes before the command.
    const ownUrl = 'url' in spec.options
    const server = { url: leading.url ?? (ownUrl ? undefined : values.url as string | undefined), token: leading.token ?? values.token as string | undefined }
    const command = COMMANDS.find((c) => c.name === spec.name)!
    return await command.run({ api: () => connect(server), io: { ...io, json: values.json === true }, args, values })
  } catch (err) {
    // A file the command had to read or write (a download's directory, say).
    const fsError = (err as NodeJS.ErrnoException).syscall !== undefined
    if (!(err instanceof CliError) && !fsError) throw err
    io.err.write(`error: ${(err as Error).message}\n`)
    return err instanceof CliError ? err.exitCode : EXIT.failed
  }
}


