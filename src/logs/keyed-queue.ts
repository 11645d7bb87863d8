// One build's log changes one operation at a time, whatever asks for them:
// a service note made while the writer closes must land after the writer's
// last output and checkpoint, or it saves its checkpoint over the writer's.

/** Runs the steps given for each key one at a time, in order; a failed step does not stop the next. */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>()

  run<T> (key: string, step: () => Promise<T>): Promise<T> {
    const next = (this.#tails.get(key) ?? Promise.resolve()).catch(() => undefined).then(step)
    this.#tails.set(key, next)
    const forget = () => { if (this.#tails.get(key) === next) this.#tails.delete(key) }
    next.then(forget, forget)
    return next
  }
}
