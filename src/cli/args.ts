import { parseArgs, type ParseArgsConfig } from 'node:util'
import { usageError } from './exit.js'

// Arguments: options that name the server come before the command words or
// among the command's own; each command declares its positionals and options.

export type Options = NonNullable<ParseArgsConfig['options']>
export type Values = Record<string, string | boolean | string[] | undefined>

export interface CommandSpec {
  /** The command words, e.g. "build submit". */
  name: string
  args: string[]
  options: Options
  usage: string
  summary: string
}

export const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} satisfies Options

export interface Invocation {
  spec: CommandSpec
  args: string[]
  values: Values
  /** --url and --token given before the command words. */
  leading: { url?: string, token?: string }
}

/** Leading --url/--token/--help, up to the first word that is not an option. */
function leadingOptions (argv: string[]) {
  const { tokens } = parseArgs({ args: argv, options: GLOBAL_OPTIONS, strict: false, allowPositionals: true, tokens: true })
  const first = tokens.find((t) => t.kind === 'positional')
  const end = first === undefined ? argv.length : first.index
  const leading = parseArgs({ args: argv.slice(0, end), options: GLOBAL_OPTIONS, strict: true, allowPositionals: false })
  return { leading: leading.values, rest: argv.slice(end) }
}

/** The command and its parsed arguments, or undefined when only help was asked for. */
export function parseCommand (argv: string[], specs: CommandSpec[]): Invocation | { help: CommandSpec | undefined } {
  let parsed: ReturnType<typeof leadingOptions>
  try {
    parsed = leadingOptions(argv)
  } catch (err) {
    throw usageError(`${(err as Error).message}; run cosa-buildd --help`)
  }
  const { leading, rest } = parsed
  const spec = specs.find((s) => s.name.split(' ').every((word, i) => rest[i] === word))
  if (!spec) {
    if (rest.length === 0) return { help: undefined }
    const near = specs.filter((s) => s.name.startsWith(rest[0] + ' ')).map((s) => s.name)
    throw usageError(`unknown command ${JSON.stringify(rest.slice(0, 2).join(' '))}: ` +
      (near.length ? `try ${near.join(', ')}` : 'run cosa-buildd --help for the commands'))
  }
  const words = spec.name.split(' ').length
  let values: Values
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({
      args: rest.slice(words), options: { ...GLOBAL_OPTIONS, ...spec.options }, strict: true, allowPositionals: true
    }))
  } catch (err) {
    throw usageError(`${(err as Error).message}; usage: cosa-buildd ${spec.usage}`)
  }
  if (values.help || leading.help) return { help: spec }
  if (positionals.length !== spec.args.length) {
    throw usageError(`${spec.name} takes ${spec.args.join(' ') || 'no arguments'}; usage: cosa-buildd ${spec.usage}`)
  }
  return { spec, args: positionals, values, leading: { url: leading.url as string | undefined, token: leading.token as string | undefined } }
}

export const str = (values: Values, name: string) => values[name] as string | undefined
export const list = (values: Values, name: string) => (values[name] as string[] | undefined) ?? []
export const flag = (values: Values, name: string) => values[name] === true

export function int (values: Values, name: string) {
  const text = str(values, name)
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text)) throw usageError(`--${name} takes a whole number, not ${JSON.stringify(text)}`)
  return Number(text)
}
