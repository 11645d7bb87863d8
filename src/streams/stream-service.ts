import { errors } from '../errors.js'
import { DEFAULT_RECIPE, recipeProblem, type Recipe } from '../cosa/recipe.js'
import { configUrlRefusal, type Lookup, type UrlPolicy } from '../git/config-url.js'
import { DEFAULT_KEEP, type Build, type Stream, type StreamConfig, type StreamResources } from '../builds/model.js'
import type { Store } from '../store/store.js'

export interface StreamInput {
  config: StreamConfig
  image?: string | undefined
  platforms?: string[] | undefined
  timeoutSeconds?: number | undefined
  keep?: number | undefined
  resources?: StreamResources | undefined
  networkMode?: string | undefined
  recipe?: Recipe | undefined
  secrets?: Record<string, string> | undefined
}

export interface StreamView extends Omit<Stream, 'secrets'> {
  /** Names only: secret values never leave the server. */
  secrets: string[]
  /** The build `builds/latest` points at, as of the newest finished build. */
  latestBuild?: Build | undefined
}

export class StreamService {
  readonly #store: Store
  readonly #defaults: { image: string, timeoutSeconds: number }
  readonly #urls: UrlPolicy
  readonly #lookup: Lookup | undefined
  readonly #now: () => Date

  constructor (deps: { store: Store, defaults: StreamService['defaults'], urls: UrlPolicy, lookup?: Lookup, now: () => Date }) {
    this.#store = deps.store
    this.#defaults = deps.defaults
    this.#urls = deps.urls
    this.#lookup = deps.lookup
    this.#now = deps.now
  }

  get defaults () { return this.#defaults }

  async put (name: string, input: StreamInput) {
    const urlProblem = await configUrlRefusal(input.config.url, this.#urls, this.#lookup)
    if (urlProblem) throw errors.configUrlRefused(urlProblem)
    const recipe = input.recipe ?? DEFAULT_RECIPE
    const problem = recipeProblem(recipe)
    if (problem) throw errors.invalidRequest(`body/recipe: ${problem}`)
    const now = this.#now().toISOString()
    return this.#store.putStream({
      name,
      config: input.config,
      image: input.image ?? this.#defaults.image,
      platforms: input.platforms ?? ['qemu'],
      timeoutSeconds: input.timeoutSeconds ?? this.#defaults.timeoutSeconds,
      keep: input.keep ?? DEFAULT_KEEP,
      resources: input.resources ?? {},
      networkMode: input.networkMode,
      recipe,
      secrets: input.secrets,
      createdAt: now,
      updatedAt: now
    })
  }

  async get (name: string): Promise<StreamView> {
    const stream = await this.#store.getStream(name)
    if (!stream) throw errors.streamNotFound(name)
    return this.#view(stream)
  }

  async list (): Promise<StreamView[]> {
    const streams = await this.#store.listStreams()
    return Promise.all(streams.map((s) => this.#view(s)))
  }

  async #view ({ secrets, ...stream }: Stream): Promise<StreamView> {
    return { ...stream, secrets: Object.keys(secrets ?? {}), latestBuild: await this.#store.latestResult(stream.name) }
  }
}
