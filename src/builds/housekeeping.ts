import type { Publisher } from '../artifacts/publisher.js'
import type { Logger } from '../logger.js'
import type { Database } from '../store/repositories.js'
import type { LogStore } from '../logs/log-store.js'
import type { Build } from './model.js'

// What the service keeps of finished builds, and for how long: idempotency
// keys for a day (as Stripe does: a retry comes within hours), build logs,
// records, outbox events and finished webhook deliveries for 90 days. A build whose cosa build is pinned, or still in its
// stream's builds.json (the store's retention has not pruned it), keeps its
// record and log: they are what says how that build was made. One pass at a
// time in this process, the only writer of the database.

const HOUR = 3600_000
const DAY = 24 * HOUR
const BATCH = 500

export interface RetentionSettings {
  idempotencyKeyHours: number
  buildDays: number
  logDays: number
}

export interface PruneReport { keys: number, logs: number, builds: number, events: number, deliveries: number }

export interface HousekeepingDeps {
  store: Database
  publisher: Publisher
  logs: LogStore
  retention: RetentionSettings
  now: () => Date
  logger: Logger
}

export class Housekeeping {
  readonly #deps: HousekeepingDeps
  #running: Promise<PruneReport> | undefined

  constructor (deps: HousekeepingDeps) {
    this.#deps = deps
  }

  /** One pass; a call while one runs gets that pass (a singleton job). */
  prune () {
    this.#running ??= this.#prune().finally(() => { this.#running = undefined })
    return this.#running
  }

  async #prune (): Promise<PruneReport> {
    const { store, retention, now, logs, logger } = this.#deps
    const at = now().getTime()
    const keys = await store.idempotency.pruneIdempotencyKeys(new Date(at - retention.idempotencyKeyHours * HOUR).toISOString())
    const logCutoff = new Date(at - retention.logDays * DAY).toISOString()
    const recordCutoff = new Date(at - retention.buildDays * DAY).toISOString()
    const old = await store.builds.finishedBefore(logCutoff < recordCutoff ? recordCutoff : logCutoff, BATCH)
    const prunable = await this.#notKept(old)
    // A record that goes takes its log with it: nothing would find the log again.
    const records = prunable.filter((b) => b.finishedAt! < recordCutoff)
    const logged = prunable.filter((b) => b.finishedAt! < logCutoff || records.includes(b))
    for (const build of logged) await logs.remove(build.id)
    const builds = await store.builds.deleteFinished(records.map((b) => b.id))
    // Events as old as the records they told of: readers (webhooks retry for days) are long done.
    const events = await store.events.pruneEvents(recordCutoff)
    // Pending deliveries stay, however old: they are what a receiver is still owed.
    const deliveries = await store.webhooks.pruneDeliveries(recordCutoff)
    const report = { keys, logs: logged.length, builds, events, deliveries }
    if (Object.values(report).some((n) => n > 0)) logger.info(report, 'housekeeping pruned old build records')
    return report
  }

  /** Builds neither pinned nor still published. */
  async #notKept (builds: Build[]) {
    const kept = new Map<string, Set<string>>()
    const keptOf = async (stream: string) => {
      let set = kept.get(stream)
      if (!set) {
        const published = (await this.#deps.publisher.readBuildsJson(stream))?.builds.map((b) => b.id) ?? []
        set = new Set([...published, ...await this.#deps.store.pins.pinnedBuilds(stream)])
        kept.set(stream, set)
      }
      return set
    }
    const out: Build[] = []
    for (const b of builds) if (!b.result || !(await keptOf(b.stream)).has(b.result.cosaBuildId)) out.push(b)
    return out
  }
}
