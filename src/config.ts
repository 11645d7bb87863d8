import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { z } from 'zod'

// Validated once at start-up: defaults < JSON file (COSA_BUILDD_CONFIG) < env.

// Standard Webhooks' schedule (5 s … 10 h), stretched to about 3 days: 71.6 h in 10 retries.
export const RETRY_SECONDS = [5, 300, 1800, 7200, 18_000, 36_000, 36_000, 50_400, 50_400, 57_600]

const token = z.string().min(16, 'tokens must have at least 16 characters')
  // deploy/env.example's placeholders must not reach production by a copy.
  .refine((t) => !/change-?me/i.test(t), 'a placeholder token (deploy/env.example): set a real one')
const tokenList = z.array(token).default([])

export const ENGINE_NAME = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lowercase letters, digits, ".", "_" and "-", at most 63')
export const BASEARCHES = ['x86_64', 'aarch64', 's390x', 'ppc64le'] as const

// One Docker engine builds run on: a Unix socket on this host, or TCP with
// mutual TLS (a remote build host). The same fields come from the config file
// and from PUT /v1/engines/{name}. TLS is required for TCP (the engine's API
// is root on its host) and meaningless for a socket, so refused there.
const engineShape = z.strictObject({
  host: z.string().regex(/^(unix:\/\/\/\S+|tcp:\/\/[A-Za-z0-9.-]+:\d{1,5})$/, 'unix:///path/to/docker.sock or tcp://host:port'),
  tls: z.strictObject({
    ca: z.string().min(1).meta({ description: 'PEM file of the CA that signed the engine\'s certificate' }),
    cert: z.string().min(1).meta({ description: 'PEM file of this service\'s client certificate' }),
    key: z.string().min(1).meta({ description: 'PEM file of the client certificate\'s key' })
  }).optional().meta({ description: 'paths on the service\'s host, read when the engine is added; never shown or logged' }),
  // For an engine that runs another arch by emulation (arm64 under
  // qemu-user on an x86_64 host); otherwise the engine's own.
  arch: z.enum(BASEARCHES).optional(),
  // One build per engine by default: a cosa build takes a host's disk and
  // CPUs, and a second one mostly makes both slower.
  capacity: z.number().int().min(1).max(64).default(1),
  labels: z.record(z.string().regex(/^[a-z0-9][a-z0-9_./-]{0,62}$/), z.string().max(256)).default({})
})

function tlsRule (e: { host: string, tls?: unknown }, ctx: z.RefinementCtx) {
  if (e.host.startsWith('tcp://') && !e.tls) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'a tcp:// engine needs tls {ca, cert, key}: mutual TLS is required' })
  if (e.host.startsWith('unix://') && e.tls) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'a unix:// engine takes no tls' })
}

export const engineFields = engineShape.superRefine(tlsRule)

export type EngineFields = z.infer<typeof engineFields>

export const configSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  dataDir: z.string().default('./data'),
  // Unset: SQLite in the data directory. A postgres:// URL: PostgreSQL
  // (docs/scale-out.md); its password is never logged.
  database: z.strictObject({
    url: z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL').optional(),
    poolSize: z.coerce.number().int().min(1).max(100).default(10)
  }).prefault({}),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  tokens: z.strictObject({ read: tokenList, submit: tokenList, admin: tokenList }).prefault({}),
  // file:// config repositories are for local development and the bundled
  // example; the default allows them only when the server is loopback-only.
  allowFileUrls: z.boolean().optional(),
  // Which config repositories streams may use (see docs/configuration.md).
  repositories: z.strictObject({
    schemes: z.array(z.enum(['https', 'ssh', 'git', 'http'])).min(1).default(['https', 'ssh']),
    // Loopback, private, link-local and metadata addresses: local development only.
    allowPrivateHosts: z.boolean().default(false),
    allowedPrefixes: z.array(z.string().min(1)).default([])
  }).prefault({}),
  docker: z.strictObject({
    // The engine's name, recorded on every build it runs (the build's `engine`).
    name: ENGINE_NAME.default('local'),
    socketPath: z.string().default('/var/run/docker.sock'),
    callTimeoutMs: z.coerce.number().int().positive().default(30_000),
    // While a build runs, the engine is pinged this often: a wait on an
    // engine that died may otherwise never end.
    heartbeatMs: z.coerce.number().int().positive().default(5000)
  }).prefault({}),
  // The engines builds run on (docs/engines.md). Unset: the one local engine
  // of `docker`, with room for builds.maxConcurrent builds. Admins add more
  // at run time (PUT /v1/engines/{name}); these are seeded at every start.
  engines: z.array(engineShape.extend({ name: ENGINE_NAME }).superRefine(tlsRule)).min(1).optional()
    .refine((list) => !list || new Set(list.map((e) => e.name)).size === list.length, 'engine names must be unique'),
  builds: z.strictObject({
    maxConcurrent: z.coerce.number().int().min(1).default(2),
    // A stream's build waits this long for its home engine (the one holding
    // its workdir and cache) to have room, then goes to another engine of its arch.
    homeEngineWaitMs: z.coerce.number().int().min(0).default(10 * 60_000),
    defaultImage: z.string().default('cosa-lite:latest'),
    defaultTimeoutSeconds: z.coerce.number().int().positive().default(6 * 3600),
    stopGraceSeconds: z.coerce.number().int().min(0).default(10),
    // After a container dies by a signal the service did not send, how long
    // to watch whether the engine is shutting down (then: infrastructure).
    engineProbeMs: z.coerce.number().int().min(0).default(15_000),
    // A build whose attempt failed for infrastructure reasons (its engine
    // went away or refused it) runs again this many times, preferably on
    // another engine, before it is reported failed (src/builds/retry-policy.ts).
    infrastructureRetries: z.coerce.number().int().min(0).max(10).default(1),
    // How long a running build waits for an engine that stopped answering
    // before the attempt counts as lost (infrastructure), and is retried.
    engineLostMs: z.coerce.number().int().min(0).default(10 * 60_000),
    // How often running builds and owned containers are reconciled.
    reconcileIntervalMs: z.coerce.number().int().positive().default(30_000),
    logMaxBytes: z.coerce.number().int().positive().default(64 * 1024 * 1024),
    // How long the log pump waits before looking at a quiet container's log again.
    logPollMs: z.coerce.number().int().positive().default(250),
    // The engine's own log of each build container (json-file): what it keeps
    // before rotating lines away. Output is lost only when the service falls
    // behind by more than logFiles × logFileBytes.
    logFileBytes: z.coerce.number().int().min(64 * 1024).default(10 * 1024 * 1024),
    logFiles: z.coerce.number().int().min(2).max(100).default(3),
    // privileged is what real cosa documents; our build machines refuse it.
    securityProfile: z.enum(['unprivileged', 'privileged']).default('unprivileged'),
    networkMode: z.string().default('none'),
    // Reachable URL of this API for containers on a network; when unset they
    // post results over the Unix socket mounted into them.
    resultUrl: z.string().url().optional()
  }).prefault({}),
  storage: z.strictObject({
    // Below this on the data directory or a local store, submits get 503 and
    // queued builds wait.
    minFreeBytes: z.coerce.number().int().min(0).default(2 * 1024 ** 3),
    artifacts: z.discriminatedUnion('kind', [
      z.strictObject({
        kind: z.literal('local'),
        /** Default: <dataDir>/store. */
        path: z.string().optional()
      }),
      z.strictObject({
        kind: z.literal('s3'),
        bucket: z.string().min(3),
        prefix: z.string().regex(/^([A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*)?$/, 'prefix is path segments without leading or trailing "/"').default(''),
        endpoint: z.string().url().optional(),
        region: z.string().default('us-east-1'),
        forcePathStyle: z.boolean().default(false),
        // Unset: the AWS SDK's default chain (AWS_ACCESS_KEY_ID..., profiles, instance roles).
        accessKeyId: z.string().optional(),
        secretAccessKey: z.string().optional(),
        partSizeBytes: z.coerce.number().int().min(5 * 1024 ** 2).default(8 * 1024 ** 2),
        requestTimeoutMs: z.coerce.number().int().positive().default(60_000)
      })
    ]).default({ kind: 'local' })
  }).prefault({}),
  // GET /metrics on the API takes a read token; a listener of its own, when
  // a port is set, serves it to Prometheus without one (keep it off the API's network).
  metrics: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.coerce.number().int().min(0).max(65535).optional()
  }).prefault({}),
  http: z.strictObject({
    bodyLimit: z.coerce.number().int().positive().default(1024 * 1024),
    requestTimeoutMs: z.coerce.number().int().positive().default(30_000),
    // Per token (per address without tokens); 0 turns the limit off.
    submitsPerMinute: z.coerce.number().int().min(0).default(120)
  }).prefault({}),
  // GET /v1/events (docs/events.md).
  events: z.strictObject({
    // A comment line this often keeps an idle stream open through proxies.
    heartbeatSeconds: z.coerce.number().int().min(1).default(15),
    // What EventSource waits before it reconnects (the `retry:` field).
    retryMs: z.coerce.number().int().min(100).default(3000),
    // Lifetime of the query-string tokens POST /v1/event-tokens mints.
    tokenTtlSeconds: z.coerce.number().int().min(10).max(3600).default(300)
  }).prefault({}),
  // What the service keeps of finished builds (docs/configuration.md#retention).
  retention: z.strictObject({
    idempotencyKeyHours: z.coerce.number().positive().default(24),
    buildDays: z.coerce.number().positive().default(90),
    logDays: z.coerce.number().positive().default(90),
    pruneIntervalMinutes: z.coerce.number().positive().default(60)
  }).prefault({}),
  // Several replicas on one PostgreSQL (docs/scale-out.md): each supervises
  // its builds under leases renewed every third of leaseSeconds; a build
  // whose replica died is taken over within leaseSeconds and one sweep.
  replicas: z.strictObject({
    // Unique per replica. A process restarted with its id takes its builds
    // back at once; another waits for their leases to expire.
    id: z.string().regex(/^[\w.@:-]{1,128}$/, 'letters, digits and . _ - @ : (at most 128)').default(hostname()),
    leaseSeconds: z.coerce.number().min(1).max(3600).default(30)
  }).prefault({}),
  // Webhooks (docs/events.md). URLs pass the same checks as config
  // repositories (src/git/config-url.ts) with their own policy: http(s) only,
  // and private receivers allowed separately from private git servers.
  webhooks: z.strictObject({
    schemes: z.array(z.enum(['https', 'http'])).min(1).default(['https']),
    allowPrivateHosts: z.boolean().default(false),
    allowedPrefixes: z.array(z.string().min(1)).default([]),
    // One attempt may take this long, answer included; then it counts as failed.
    timeoutMs: z.coerce.number().int().min(100).default(10_000),
    // Attempts in flight at once, over all webhooks.
    concurrency: z.coerce.number().int().min(1).max(64).default(4),
    // The waits after the 1st, 2nd… failed attempt (±20 % jitter); when they
    // run out the delivery has failed. The default spans about 3 days.
    retrySeconds: z.array(z.number().min(0)).max(50).default(RETRY_SECONDS)
  }).prefault({})
})

export type Config = z.infer<typeof configSchema>

const splitTokens = (value: string) => value.split(',').map((t) => t.trim()).filter(Boolean)
const flag = (value: string) => ['1', 'true', 'yes'].includes(value)

/** Each environment variable and the file key it sets; written once, for loading and for error messages. */
const ENV: Record<string, { path: string[], parse?: (value: string) => unknown }> = {
  COSA_BUILDD_HOST: { path: ['host'] },
  COSA_BUILDD_PORT: { path: ['port'] },
  COSA_BUILDD_DATA_DIR: { path: ['dataDir'] },
  COSA_BUILDD_DATABASE_URL: { path: ['database', 'url'] },
  COSA_BUILDD_LOG_LEVEL: { path: ['logLevel'] },
  COSA_BUILDD_READ_TOKENS: { path: ['tokens', 'read'], parse: splitTokens },
  COSA_BUILDD_SUBMIT_TOKENS: { path: ['tokens', 'submit'], parse: splitTokens },
  COSA_BUILDD_ADMIN_TOKENS: { path: ['tokens', 'admin'], parse: splitTokens },
  COSA_BUILDD_ALLOW_FILE_URLS: { path: ['allowFileUrls'], parse: flag },
  COSA_BUILDD_REPOSITORY_PREFIXES: { path: ['repositories', 'allowedPrefixes'], parse: splitTokens },
  COSA_BUILDD_ALLOW_PRIVATE_HOSTS: { path: ['repositories', 'allowPrivateHosts'], parse: flag },
  DOCKER_HOST: { path: ['docker', 'socketPath'], parse: dockerSocket },
  COSA_BUILDD_MAX_CONCURRENT: { path: ['builds', 'maxConcurrent'] },
  COSA_BUILDD_IMAGE: { path: ['builds', 'defaultImage'] },
  COSA_BUILDD_INFRASTRUCTURE_RETRIES: { path: ['builds', 'infrastructureRetries'] },
  COSA_BUILDD_SECURITY_PROFILE: { path: ['builds', 'securityProfile'] },
  COSA_BUILDD_NETWORK_MODE: { path: ['builds', 'networkMode'] },
  COSA_BUILDD_RESULT_URL: { path: ['builds', 'resultUrl'] },
  COSA_BUILDD_MIN_FREE_BYTES: { path: ['storage', 'minFreeBytes'] },
  COSA_BUILDD_SUBMITS_PER_MINUTE: { path: ['http', 'submitsPerMinute'] },
  COSA_BUILDD_REPLICA_ID: { path: ['replicas', 'id'] },
  COSA_BUILDD_LEASE_SECONDS: { path: ['replicas', 'leaseSeconds'] },
  COSA_BUILDD_METRICS_HOST: { path: ['metrics', 'host'] },
  COSA_BUILDD_METRICS_PORT: { path: ['metrics', 'port'] },
  COSA_BUILDD_EVENTS_HEARTBEAT_SECONDS: { path: ['events', 'heartbeatSeconds'] },
  COSA_BUILDD_EVENT_TOKEN_TTL_SECONDS: { path: ['events', 'tokenTtlSeconds'] },
  COSA_BUILDD_STORE: { path: ['storage', 'artifacts', 'kind'] },
  COSA_BUILDD_STORE_PATH: { path: ['storage', 'artifacts', 'path'] },
  COSA_BUILDD_S3_BUCKET: { path: ['storage', 'artifacts', 'bucket'] },
  COSA_BUILDD_S3_PREFIX: { path: ['storage', 'artifacts', 'prefix'] },
  COSA_BUILDD_S3_ENDPOINT: { path: ['storage', 'artifacts', 'endpoint'] },
  COSA_BUILDD_S3_REGION: { path: ['storage', 'artifacts', 'region'] },
  COSA_BUILDD_S3_PATH_STYLE: { path: ['storage', 'artifacts', 'forcePathStyle'], parse: flag }
}

/**
 * Build containers are created with bind mounts of the data directory, which
 * the engine resolves on its own host: only a local engine can run them.
 */
function dockerSocket (value: string) {
  if (value.startsWith('unix://')) return value.slice('unix://'.length)
  throw new Error(`DOCKER_HOST=${value} is not supported: cosa-buildd bind-mounts its data directory into build ` +
    'containers, so the engine must run on the same host; use unix:// (or unset DOCKER_HOST)')
}

/** Read by other parts (the CLI, build containers, the config file's path), not by the server's schema. */
const OTHER_ENV = ['COSA_BUILDD_CONFIG', 'COSA_BUILDD_URL', 'COSA_BUILDD_TOKEN', 'COSA_BUILDD_BUILD_ID', 'COSA_BUILDD_RESULT_SOCKET']

function fromEnv (env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, any> = {}
  for (const [name, { path, parse }] of Object.entries(ENV)) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    let node = out
    for (const key of path.slice(0, -1)) node = node[key] ??= {}
    node[path.at(-1)!] = parse ? parse(raw) : raw
  }
  return out
}

const distance = (a: string, b: string) => {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    row = next
  }
  return row[b.length]!
}

/** COSA_BUILDD_* variables nothing reads (a misspelling is otherwise silently ignored), each with the nearest known name. */
export function unknownEnv (env: NodeJS.ProcessEnv): Array<{ name: string, nearest: string }> {
  const known = [...Object.keys(ENV).filter((n) => n.startsWith('COSA_BUILDD_')), ...OTHER_ENV]
  return Object.keys(env).filter((name) => name.startsWith('COSA_BUILDD_') && !known.includes(name)).map((name) => ({
    name,
    nearest: known.reduce((best, k) => distance(name, k) < distance(name, best) ? k : best)
  }))
}

/** "builds.maxConcurrent (COSA_BUILDD_MAX_CONCURRENT)": what an operator can search for either way. */
function describePath (path: PropertyKey[]) {
  const key = path.join('.')
  const name = Object.entries(ENV).find(([, e]) => `${key}.`.startsWith(`${e.path.join('.')}.`))?.[0]
  return (key || '(root)') + (name ? ` (${name})` : '')
}

function merge (base: any, over: any): any {
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return over
  const out = { ...base }
  for (const [k, v] of Object.entries(over ?? {})) out[k] = k in out ? merge(out[k], v) : v
  return out
}

export function loadConfig (env: NodeJS.ProcessEnv = process.env, overrides: Record<string, unknown> = {}): Config {
  const file = env.COSA_BUILDD_CONFIG ? JSON.parse(readFileSync(env.COSA_BUILDD_CONFIG, 'utf8')) : {}
  let fromEnvironment
  try {
    fromEnvironment = fromEnv(env)
  } catch (err) {
    throw new Error(`invalid configuration: ${(err as Error).message}`)
  }
  const parsed = configSchema.safeParse(merge(merge(file, fromEnvironment), overrides))
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${describePath(i.path)}: ${i.message}`).join('; ')
    throw new Error(`invalid configuration: ${detail}`)
  }
  return deepFreeze({ ...parsed.data, dataDir: resolve(parsed.data.dataDir) })
}

/** The loaded configuration is read everywhere and changed nowhere. */
function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null) for (const v of Object.values(value)) deepFreeze(v)
  return Object.freeze(value)
}

export const hasTokens = (config: Config) =>
  config.tokens.read.length + config.tokens.submit.length + config.tokens.admin.length > 0

export const isLoopback = (host: string) =>
  host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)

export const fileUrlsAllowed = (config: Config) =>
  config.allowFileUrls ?? (!hasTokens(config) && isLoopback(config.host))

export const urlPolicy = (config: Config) => ({ ...config.repositories, allowFileUrls: fileUrlsAllowed(config) })

export const webhookUrlPolicy = (config: Config) => ({
  schemes: config.webhooks.schemes,
  allowPrivateHosts: config.webhooks.allowPrivateHosts,
  allowedPrefixes: config.webhooks.allowedPrefixes,
  allowFileUrls: false,
  label: 'url'
})

export type EngineSettings = EngineFields & { name: string }

/** The engines of the config file; without any, the one local engine of `docker`, with room for every build. */
export const configuredEngines = (config: Config): EngineSettings[] => config.engines ?? [{
  name: config.docker.name, host: `unix://${config.docker.socketPath}`, capacity: config.builds.maxConcurrent, labels: {}
}]
