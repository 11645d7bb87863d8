import { isDatabaseUnavailable } from '../errors.js'
import type { Logger } from '../logger.js'
import type { Database, LeaseTerms } from '../store/repositories.js'

// The leases this process holds on the builds it supervises, with their
// fencing tokens (issue #14; docs/scale-out.md): taken by a claim (the
// lifecycle's) or a takeover (the reconciler's), renewed every third of a
// lease, let go when supervision ends. The lifecycle writes every change of
// such a build with its token; the first write that changes nothing, or a
// renewal that fails, means another replica has the build now: the lease is
// lost, its signal aborts, and the supervisor lets go without writing or
// touching the job again.
//
// Singleton duties (duty()) are leases too, on rows of their own.
//
// Each lease also has a deadline on this process's monotonic clock: the
// lease's length after the claim or renewal that set it was sent. Past it
// the database may already have given the build to another replica, so
// writes the database cannot fence (the build's log file) stop first.

/** How often a lock row held by another replica is tried again. */
const LOCK_POLL_MS = 50

interface Held {
  token: number
  lost: AbortController
  deadline: number
}

export class HeldLeases {
  readonly #held = new Map<string, Held>()
  readonly #store: Database
  readonly #logger: Logger
  /** This replica's id and lease length. */
  readonly terms: LeaseTerms

  constructor (deps: { store: Database, logger: Logger, terms: LeaseTerms }) {
    this.#store = deps.store
    this.#logger = deps.logger
    this.terms = deps.terms
  }

  /** `askedAt`: performance.now() when the claim or takeover was sent. */
  hold (buildId: string, token: number, askedAt: number) {
    this.#held.get(buildId)?.lost.abort()
    this.#held.set(buildId, { token, lost: new AbortController(), deadline: askedAt + this.terms.ms })
  }

  /** Takes over a running build whose lease under `token` expired (or is this replica's own); undefined when another was first. */
  async takeOver (buildId: string, token: number) {
    // Never from itself: a build this process supervises keeps its token.
    if (this.token(buildId) !== undefined) return undefined
    const asked = performance.now()
    const taken = await this.#store.leases.takeOver(buildId, token, this.terms)
    if (!taken) return undefined
    this.hold(buildId, taken.token, asked)
    return taken.build
  }

  /** Extends every lease held; the ones that could not be are lost. Returns the builds with a cancel request. */
  async renew () {
    const cancelled: string[] = []
    for (const [buildId, held] of this.#held) {
      if (held.lost.signal.aborted) continue
      const asked = performance.now()
      let renewed
      try {
        renewed = await this.#store.leases.renew(buildId, held.token, this.terms)
      } catch (err) {
        // Not lost, not renewed: the deadline says when the lease can no longer be trusted.
        if (isDatabaseUnavailable(err)) continue
        throw err
      }
      if (!renewed) {
        this.lose(buildId)
        continue
      }
      held.deadline = Math.max(held.deadline, asked + this.terms.ms)
      if (renewed.cancelRequested) cancelled.push(buildId)
    }
    return cancelled
  }

  /**
   * Whether the supervisor may still write what the database cannot fence
   * (the build's log). Past the lease's deadline without a renewal (the
   * process was paused, or cut off from the database) it may not: the lease
   * is given up here, and the build goes to whichever replica's sweep takes
   * it over, this one's included.
   */
  mayWrite (buildId: string) {
    const held = this.#held.get(buildId)
    if (!held || held.lost.signal.aborted) return false
    if (performance.now() < held.deadline) return true
    this.#logger.warn({ buildId }, 'the build\'s lease was not renewed in time; this replica stops supervising it')
    held.lost.abort()
    return false
  }

  /**
   * Whether this replica holds (now renewed) the singleton duty `name`, a
   * lease row of its own: one replica at a time reconciles, prunes and sends
   * webhook deliveries. Another takes a duty over once its holder stops
   * renewing it.
   */
  async duty (name: string) {
    return await this.#store.leases.holdDuty(name, this.terms) !== undefined
  }

  /**
   * Waits for the lease row `name` as a lock across replicas (this process
   * serializes its own callers), and returns its release. A holder that died
   * leaves it to expire: the wait gives up after two lease lengths.
   */
  async lock (name: string) {
    const deadline = performance.now() + 2 * this.terms.ms
    while (!await this.duty(name)) {
      if (performance.now() > deadline) throw new Error(`${name} stayed locked by another replica for ${2 * this.terms.ms} ms`)
      await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
    }
    return () => this.#store.leases.releaseDuty(name, this.terms.owner)
  }

  /** This process stops supervising the build: a lease still held expires now, for another replica to adopt at once. */
  async letGo (buildId: string) {
    const token = this.token(buildId)
    this.#held.delete(buildId)
    if (token !== undefined) await this.#store.leases.release(buildId, token)
  }

  /** The token to fence a write with: undefined when none is held, or it was lost. */
  token (buildId: string) {
    const held = this.#held.get(buildId)
    return held && !held.lost.signal.aborted ? held.token : undefined
  }

  isLost (buildId: string) {
    return this.#held.get(buildId)?.lost.signal.aborted === true
  }

  /** Aborts when the lease is lost; never, for a build without one. */
  lostSignal (buildId: string): AbortSignal {
    return this.#held.get(buildId)?.lost.signal ?? new AbortController().signal
  }

  /** Another replica has the build (a fenced write or a renewal changed nothing). */
  lose (buildId: string) {
    const held = this.#held.get(buildId)
    if (!held || held.lost.signal.aborted) return
    this.#logger.warn({ buildId }, 'the build\'s lease is lost: another replica supervises it now; this one stops writing')
    held.lost.abort()
  }

  /** The build stopped running (its final state, a requeue): no lease any more. */
  forget (buildId: string) {
    this.#held.delete(buildId)
  }
}
