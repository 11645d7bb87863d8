import { errors } from '../errors.js'
import { DEFAULT_RECIPE, recipeProblem, type Recipe } from '../cosa/recipe.js'
import { configUrlRefusal, type Lookup, type UrlPolicy } from '../git/config-url.js'
import { DEFAULT_KEEP, type BootTestSetting, type Build, type Stream, type StreamConfig, type StreamResources } from '../builds/model.js'
import type { Executor } from '../executor/executor.js'
import type { Database } from '../store/repositories.js'
import { bootTestProblems, describeProblems, resourceProblems, type SettingProblem } from './stream-fit.js'

export interface StreamInput {
  config: StreamConfig
  image?: string | undefined
  platforms?: string[] | undefined
  arches?: string[] | undefined
  timeoutSeconds?: number | undefined
  keep?: number | undefined
  resources?: StreamResources | undefined
  networkMode?: string | undefined
  recipe?: Recipe | undefined
  publicRead?: boolean | undefined
  secrets?: Record<string, string> | undefined
  bootTest?: BootTestSetting | undefined
}

export interface StreamView extends Omit<Stream, 'secrets' | 'publicRead'> {
  /** Names only: secret values never leave the server. */
  secrets: string[]
  publicRead: boolean
  /** The build `builds/latest` points at, as of the newest finished build. */
  latestBuild?: Build | undefined
}

/** What registration asks the engine. */
export type StreamEngine = Pick<Executor, 'capacity' | 'imageUser' | 'arch'>

export class StreamService {
  readonly #store: Database
  readonly #engine: StreamEngine
  readonly #defaults: { image: string, timeoutSeconds: number }
  readonly #urls: UrlPolicy
  readonly #lookup: Lookup | undefined
  readonly #now: () => Date

  constructor (deps: {
    store: Database, engine: StreamEngine, defaults: StreamService['defaults'], urls: UrlPolicy, lookup?: Lookup, now: () => Date
  }) {
    this.#store = deps.store
    this.#engine = deps.engine
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
    const tooSmall = bootTestProblems(input.resources ?? {}, input.bootTest)
    if (tooSmall.length) throw errors.invalidRequest(`body/${tooSmall[0]!.field}: ${tooSmall[0]!.message}`)
    const image = input.image ?? this.#defaults.image
    const unfit = await this.#engineProblems(image, input.resources ?? {}, input.arches?.[0])
    if (unfit.length) throw errors.streamUnfit(describeProblems(unfit.map((p) => ({ ...p, field: `body/${p.field}` }))))
    const now = this.#now().toISOString()
    return this.#store.streams.putStream({
      name,
      config: input.config,
      image,
      platforms: input.platforms ?? ['qemu'],
      arches: input.arches,
      timeoutSeconds: input.timeoutSeconds ?? this.#defaults.timeoutSeconds,
      keep: input.keep ?? DEFAULT_KEEP,
      resources: input.resources ?? {},
      networkMode: input.networkMode,
      publicRead: input.publicRead ?? false,
      recipe,
      secrets: input.secrets,
      bootTest: input.bootTest,
      createdAt: now,
      updatedAt: now
    })
  }

  /**
   * What the engine says no to: limits beyond it, an image it lacks. An
   * engine that does not answer now cannot say; each build checks again.
   */
  async #engineProblems (image: string, resources: StreamResources, arch: string | undefined): Promise<SettingProblem[]> {
    let capacity, user
    try {
      // The default engine is the one asked; builds of another arch run elsewhere, and check there.
      if (arch !== undefined && arch !== await this.#engine.arch()) return []
      const answers = await Promise.all([this.#engine.capacity(), this.#engine.imageUser(image)])
      capacity = answers[0]
      user = answers[1]
    } catch {
      return []
    }
    const problems = resourceProblems(resources, capacity)
    if (user === undefined) {
      problems.push({ field: 'image', message: `${image} is not on the Docker engine: build or load it first (npm run image:cosa-lite for cosa-lite)` })
    }
    return problems
  }

  async get (name: string): Promise<StreamView> {
    const stream = await this.#store.streams.getStream(name)
    if (!stream) throw errors.streamNotFound(name)
    return this.#view(stream)
  }

  async list (): Promise<StreamView[]> {
    const streams = await this.#store.streams.listStreams()
    return Promise.all(streams.map((s) => this.#view(s)))
  }

  async #view ({ secrets, ...stream }: Stream): Promise<StreamView> {
    return {
      ...stream,
      publicRead: stream.publicRead ?? false,
      secrets: Object.keys(secrets ?? {}),
      latestBuild: await this.#store.builds.latestResult(stream.name)
    }
  }
}
