import { authHeaders, getJson, request, type Build } from './api.js'
import { isFinished } from './format.js'

// A build's log in the browser, by the rules people ask of CI log views:
// open at the tail (the last 64 KiB) with "load earlier"; follow while the
// view sits at the bottom, stop when the reader scrolls up, resume at the
// bottom; stop at the end of the build; hold a bounded number of lines in
// the DOM whatever the log's size; `==> …` recipe steps as collapsible
// sections. Plain DOM rather than components: the log grows a line at a
// time and must not be diffed.

export const TAIL_BYTES = 64 * 1024
export const MAX_LINES = 5000
const RETRY_MS = 2000
const NEWLINE = 0x0a

export type FollowState = 'loading' | 'following' | 'paused' | 'ended'

interface Line { text: string, bytes: number }

export interface LogViewOptions {
  buildId: string
  /** The scrolling element the log is drawn into. */
  element: HTMLElement
  onChange: (state: { follow: FollowState, first: number, end: number }) => void
  /** The step a failed build failed in, when the server says. */
  failedStep?: () => string | undefined
}

const decoder = new TextDecoder()

/** Splits bytes at newlines: complete lines, and the bytes after the last newline. */
function splitLines (bytes: Uint8Array): { lines: Line[], rest: Uint8Array } {
  const lines: Line[] = []
  let start = 0
  for (let i = bytes.indexOf(NEWLINE); i >= 0; i = bytes.indexOf(NEWLINE, start)) {
    lines.push({ text: decoder.decode(bytes.subarray(start, i)), bytes: i + 1 - start })
    start = i + 1
  }
  return { lines, rest: bytes.slice(start) }
}

function concat (a: Uint8Array, b: Uint8Array) {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

export class LogView {
  readonly #opts: LogViewOptions
  readonly #el: HTMLElement
  readonly #abort = new AbortController()
  #lines: Line[] = []
  /** Byte offset of the first line held, and just after the last complete one. */
  #first = 0
  #end = 0
  #rest: Uint8Array = new Uint8Array(0)
  #follow: FollowState = 'loading'
  #body: HTMLElement

  constructor (opts: LogViewOptions) {
    this.#opts = opts
    this.#el = opts.element
    this.#body = this.#el
    this.#el.addEventListener('scroll', () => this.#onScroll())
  }

  get follow () { return this.#follow }

  close () { this.#abort.abort() }

  /** Opens at the tail; with `live`, keeps reading until the build has ended. */
  async open (live: boolean) {
    const head = await request(this.#logPath(0), { method: 'HEAD', signal: this.#abort.signal })
    const size = Number(head.headers.get('x-log-size') ?? 0)
    const start = Math.max(0, size - TAIL_BYTES)
    this.#first = this.#end = start
    // A finished build's log stays `loading` until its lines are in: `ended`
    // must not say the log is complete before it is shown.
    if (live) this.#setFollow('following')
    await this.#read(start, live, start > 0)
    // A finished build's log opens at its end too: that is where it failed.
    if (!live) this.#el.scrollTop = this.#el.scrollHeight
  }

  /** The 64 KiB before the first line held. */
  async loadEarlier () {
    if (this.#first === 0) return
    const from = Math.max(0, this.#first - TAIL_BYTES)
    const want = this.#first - from
    const res = await request(this.#logPath(from), { signal: this.#abort.signal })
    const reader = res.body!.getReader()
    let got = new Uint8Array(0)
    // The API reads to the end: stop once the part before what is held has come.
    while (got.length < want) {
      const { done, value } = await reader.read()
      if (done) break
      got = concat(got, value)
    }
    void reader.cancel()
    let bytes = got.subarray(0, want)
    let skipped = 0
    if (from > 0) {
      skipped = bytes.indexOf(NEWLINE) + 1
      bytes = bytes.subarray(skipped)
    }
    const { lines } = splitLines(bytes)
    this.#lines = [...lines, ...this.#lines]
    this.#first = from + skipped
    this.#render()
    this.#changed()
  }

  #logPath (offset: number, follow = false) {
    return `/v1/builds/${encodeURIComponent(this.#opts.buildId)}/log?offset=${offset}${follow ? '&follow=true' : ''}`
  }

  async #read (offset: number, live: boolean, skipPartial: boolean) {
    let skip = skipPartial
    for (;;) {
      try {
        const res = await fetch(this.#logPath(offset, live), { headers: authHeaders(), signal: this.#abort.signal })
        if (!res.ok) throw new Error(`log: HTTP ${res.status}`)
        const reader = res.body!.getReader()
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          let chunk = concat(this.#rest, value)
          if (skip) {
            const at = chunk.indexOf(NEWLINE)
            if (at < 0) { this.#first += chunk.length; this.#end = this.#first; offset += value.length; continue }
            this.#first += at + 1
            this.#end = this.#first
            chunk = chunk.subarray(at + 1)
            skip = false
          }
          offset += value.length
          const { lines, rest } = splitLines(chunk)
          this.#rest = rest
          this.#append(lines)
        }
        // A follow ends when the build has, and also when the server shuts
        // down (it expects a resume with ?offset=): the build's state says which.
        if (live && !(await this.#buildEnded())) throw new Error('log: the server ended the follow early')
        if (this.#rest.length > 0) {
          this.#append([{ text: decoder.decode(this.#rest), bytes: this.#rest.length }])
          this.#rest = new Uint8Array(0)
        }
        this.#setFollow('ended')
        return
      } catch (err) {
        if (this.#abort.signal.aborted || !live) throw err
        // A dropped connection: resume where it stopped.
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      }
    }
  }

  async #buildEnded () {
    return isFinished(await getJson<Build>(`/v1/builds/${encodeURIComponent(this.#opts.buildId)}`))
  }

  #append (lines: Line[]) {
    if (lines.length === 0) return
    this.#lines.push(...lines)
    for (const line of lines) this.#end += line.bytes
    if (this.#lines.length > MAX_LINES) {
      const drop = this.#lines.length - Math.floor(MAX_LINES * 0.8)
      for (const line of this.#lines.splice(0, drop)) this.#first += line.bytes
      this.#render()
    } else {
      for (const line of lines) this.#draw(line)
    }
    if (this.#follow === 'following') this.#el.scrollTop = this.#el.scrollHeight
    this.#changed()
  }

  #render () {
    this.#el.replaceChildren()
    this.#body = this.#el
    for (const line of this.#lines) this.#draw(line)
    if (this.#follow === 'following') this.#el.scrollTop = this.#el.scrollHeight
  }

  #draw (line: Line) {
    if (line.text.startsWith('==> ') && !line.text.startsWith('==> cosa-buildd:')) {
      const section = document.createElement('details')
      section.open = true
      section.className = 'step'
      const summary = document.createElement('summary')
      summary.textContent = line.text
      const failed = this.#opts.failedStep?.()
      if (failed !== undefined && line.text.includes(failed)) section.classList.add('failed-step')
      const body = document.createElement('div')
      section.append(summary, body)
      this.#el.append(section)
      this.#body = body
      return
    }
    const div = document.createElement('div')
    div.className = line.text.startsWith('==> cosa-buildd:') ? 'line service' : 'line'
    div.textContent = line.text === '' ? '\u00a0' : line.text
    this.#body.append(div)
  }

  /**
   * Marks where a failed build stopped: the step the server names, or
   * else the last recipe step the log shows.
   */
  markFailedStep () {
    const steps = [...this.#el.querySelectorAll<HTMLDetailsElement>('details.step')]
    if (steps.some((s) => s.classList.contains('failed-step'))) return
    steps.at(-1)?.classList.add('failed-step')
  }

  #onScroll () {
    if (this.#follow === 'ended' || this.#follow === 'loading') return
    const atBottom = this.#el.scrollHeight - this.#el.scrollTop - this.#el.clientHeight < 8
    this.#setFollow(atBottom ? 'following' : 'paused')
  }

  #setFollow (state: FollowState) {
    if (this.#follow === state) return
    this.#follow = state
    this.#el.dataset.follow = state
    this.#changed()
  }

  #changed () {
    this.#opts.onChange({ follow: this.#follow, first: this.#first, end: this.#end })
  }
}
