import { isTerminal } from './build-state.js'
import type { BuildView } from './build-service.js'

// A finished build never changes: the transition table has no way out of a
// final state. Only its pin does, and pins change through BuildService.pin,
// which forgets the stream's builds here. So polls of finished builds (a CI
// job waiting for its result, a dashboard) are answered from memory, with the
// same object each time, which lets the HTTP layer keep its serialized form
// too (sendTagged in src/http/etag.ts). Bounded, first kept first out: a
// build still polled after thousands of others is read from the store once
// more. With API replicas, a pin made on one must reach the others' caches.

const DEFAULT_ENTRIES = 2000

export class FinishedBuilds {
  readonly #max: number
  readonly #views = new Map<string, BuildView>()

  constructor (max = DEFAULT_ENTRIES) {
    this.#max = max
  }

  get (id: string) {
    return this.#views.get(id)
  }

  /** Keeps `view` if the build is finished; returns it either way. */
  remember (view: BuildView) {
    if (!isTerminal(view.state)) return view
    this.#views.set(view.id, view)
    // A Map iterates in insertion order: the first key is the oldest.
    if (this.#views.size > this.#max) this.#views.delete(this.#views.keys().next().value!)
    return view
  }

  forgetStream (stream: string) {
    for (const [id, view] of this.#views) if (view.stream === stream) this.#views.delete(id)
  }
}
