import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { z } from 'zod'

// Validated once at start-up: defaults < JSON file (COSA_BUILDD_CONFIG) < env.

// Standard Webhooks' schedule (5 s … 10 h), stretched to about 3 days: 71.6 h in 10 retries.
export const RETRY_SECONDS = [5, 300, 1800, 7200, 18_000, 36_000, 36_000, 50_400, 50_400, 57_600]

const tokenList = z.array(z.string().min(16, 'tokens must have at least 16 characters')).default([])

export const configSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  dataDir: z.string().default('./data'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  tokens: z.strictObject({ read: tokenList, submit: tokenList, admin: tokenList }).default({ read: [], submit: [], admin: [] }),
  // file:// config repositories are for local development and the bundled
  // example; the default allows them only when the server is loopback-only.
  allowFileUrls: z.boolean().optional(),
  // Which config repositories streams may use (see docs/configuration.md).
  repositories: z.strictObject({
    schemes: z.array(z.enum(['https', 'ssh', 'git', 'http'])).min(1).default(['https', 'ssh']),
    // Loopback, private, link-local and metadata addresses: local development only.
    allowPrivateHosts: z.boolean().default(false),
    allowedPrefixes: z.array(z.string().min(1)).default([])
  }).default({ schemes: ['https', 'ssh'], allowPrivateHosts: false, allowedPrefixes: [] }),
  docker: z.strictObject({
    socketPath: z.string().default('/var/run/docker.sock'),
    callTimeoutMs: z.coerce.number().int().positive().default(30_000),
    // While a build runs, the engine is pinged this often: a wait on an
    // engine that died may otherwise never end.
    heartbeatMs: z.coerce.number().int().positive().default(5000)
  }).default({ socketPath: '/var/run/docker.sock', callTimeoutMs: 30_000, heartbeatMs: 5000 }),
  builds: z.strictObject({
    maxConcurrent: z.coerce.number().int().min(1).default(2),
    defaultImage: z.string().default('cosa-lite:latest'),
    defaultTimeoutSeconds: z.coerce.number().int().positive().default(6 * 3600),
    stopGraceSeconds: z.coerce.number().int().min(0).default(10),
    // After a container dies by a signal the service did not send, how long
    // to watch whether the engine is shutting down (then: infrastructure).
    engineProbeMs: z.coerce.number().int().min(0).default(5000),
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
  }).default({ minFreeBytes: 2 * 1024 ** 3, artifacts: { kind: 'local' } }),
  // GET /metrics on the API takes a read token; a listener of its own, when
  // a port is set, serves it to Prometheus without one (keep it off the API's network).
  metrics: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: z.coerce.number().int().min(0).max(65535).optional()
  }).default({ host: '127.0.0.1' }),
  http: z.strictObject({
    bodyLimit: z.coerce.number().int().positive().default(1024 * 1024),
    requestTimeoutMs: z.coerce.number().int().positive().default(30_000),
    // Per token (per address without tokens); 0 turns the limit off.
    submitsPerMinute: z.coerce.number().int().min(0).default(120)
  }).default({ bodyLimit: 1024 * 1024, requestTimeoutMs: 30_000, submitsPerMinute: 120 }),
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

const splitTokens = (value: string | undefined) => value?.split(',').map((t) => t.trim()).filter(Boolean)

function fromEnv (env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, any> = {}
  const set = (path: string[], value: unknown) => {
    if (value === undefined || value === '') return
    let node = out
    for (const key of path.slice(0, -1)) node = node[key] ??= {}
    node[path.at(-1)!] = value
  }
  set(['host'], env.COSA_BUILDD_HOST)
  set(['port'], env.COSA_BUILDD_PORT)
  set(['dataDir'], env.COSA_BUILDD_DATA_DIR)
  set(['logLevel'], env.COSA_BUILDD_LOG_LEVEL)
  set(['tokens', 'read'], splitTokens(env.COSA_BUILDD_READ_TOKENS))
  set(['tokens', 'submit'], splitTokens(env.COSA_BUILDD_SUBMIT_TOKENS))
  set(['tokens', 'admin'], splitTokens(env.COSA_BUILDD_ADMIN_TOKENS))
  if (env.COSA_BUILDD_ALLOW_FILE_URLS) set(['allowFileUrls'], ['1', 'true', 'yes'].includes(env.COSA_BUILDD_ALLOW_FILE_URLS))
  set(['repositories', 'allowedPrefixes'], splitTokens(env.COSA_BUILDD_REPOSITORY_PREFIXES))
  if (env.COSA_BUILDD_ALLOW_PRIVATE_HOSTS) {
    set(['repositories', 'allowPrivateHosts'], ['1', 'true', 'yes'].includes(env.COSA_BUILDD_ALLOW_PRIVATE_HOSTS))
  }
  set(['docker', 'socketPath'], env.DOCKER_HOST?.startsWith('unix://') ? env.DOCKER_HOST.slice(7) : undefined)
  set(['builds', 'maxConcurrent'], env.COSA_BUILDD_MAX_CONCURRENT)
  set(['builds', 'defaultImage'], env.COSA_BUILDD_IMAGE)
  set(['builds', 'securityProfile'], env.COSA_BUILDD_SECURITY_PROFILE)
  set(['builds', 'networkMode'], env.COSA_BUILDD_NETWORK_MODE)
  set(['builds', 'resultUrl'], env.COSA_BUILDD_RESULT_URL)
  set(['storage', 'minFreeBytes'], env.COSA_BUILDD_MIN_FREE_BYTES)
  set(['http', 'submitsPerMinute'], env.COSA_BUILDD_SUBMITS_PER_MINUTE)
  set(['metrics', 'host'], env.COSA_BUILDD_METRICS_HOST)
  set(['metrics', 'port'], env.COSA_BUILDD_METRICS_PORT)
  set(['events', 'heartbeatSeconds'], env.COSA_BUILDD_EVENTS_HEARTBEAT_SECONDS)
  set(['events', 'tokenTtlSeconds'], env.COSA_BUILDD_EVENT_TOKEN_TTL_SECONDS)
  set(['storage', 'artifacts', 'kind'], env.COSA_BUILDD_STORE)
  set(['storage', 'artifacts', 'path'], env.COSA_BUILDD_STORE_PATH)
  set(['storage', 'artifacts', 'bucket'], env.COSA_BUILDD_S3_BUCKET)
  set(['storage', 'artifacts', 'prefix'], env.COSA_BUILDD_S3_PREFIX)
  set(['storage', 'artifacts', 'endpoint'], env.COSA_BUILDD_S3_ENDPOINT)
  set(['storage', 'artifacts', 'region'], env.COSA_BUILDD_S3_REGION)
  if (env.COSA_BUILDD_S3_PATH_STYLE) set(['storage', 'artifacts', 'forcePathStyle'], ['1', 'true', 'yes'].includes(env.COSA_BUILDD_S3_PATH_STYLE))
  return out
}

function merge (base: any, over: any): any {
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return over
  const out = { ...base }
  for (const [k, v] of Object.entries(over ?? {})) out[k] = k in out ? merge(out[k], v) : v
  return out
}

export function loadConfig (env: NodeJS.ProcessEnv = process.env, overrides: Record<string, unknown> = {}): Config {
  const file = env.COSA_BUILDD_CONFIG ? JSON.parse(readFileSync(env.COSA_BUILDD_CONFIG, 'utf8')) : {}
  const parsed = configSchema.safeParse(merge(merge(file, fromEnv(env)), overrides))
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new Error(`invalid configuration: ${detail}`)
  }
  return { ...parsed.data, dataDir: resolve(parsed.data.dataDir) }
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
