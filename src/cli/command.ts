import type { CommandSpec, Values } from './args.js'
import type { Api } from './client.js'
import type { Io } from './output.js'

export interface Context {
  api: () => Api
  io: Io
  args: string[]
  values: Values
}

export interface Command extends CommandSpec {
  /** Resolves with the exit status. */
  run: (ctx: Context) => Promise<number>
}

export const JSON_OPTION = { json: { type: 'boolean' } } as const
