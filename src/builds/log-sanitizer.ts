// Build logs are read in browsers and terminals: terminal control sequences
// (colours, cursor moves, OSC titles and hyperlinks) are stripped, and a bare
// carriage return (progress bars) becomes a line break.

/* eslint-disable no-control-regex */
const OSC = /\x1b\][\s\S]*?(?:\x07|\x1b\\)/g
const CSI = /\x1b\[[0-?]*[ -/]*[@-~]/g
const OTHER_ESC = /\x1b[@-Z\\-_]|\x1b[()#][0-9A-Za-z]|\x9b[0-?]*[ -/]*[@-~]/g
const CONTROLS = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/g
const LONE_ESC = /\x1b/g
const ANY_CONTROL = /[\x00-\x08\x0b-\x1f\x7f\x9b]/

/** Cleans one line (without its trailing newline). */
export function sanitizeLine (line: string): string {
  // Most lines have nothing to strip: one scan instead of six replaces.
  if (!ANY_CONTROL.test(line)) return line
  return line
    .replace(OSC, '')
    .replace(CSI, '')
    .replace(OTHER_ESC, '')
    .replace(LONE_ESC, '')
    .replace(/\r+$/, '')
    .replace(/\r/g, '\n')
    .replace(CONTROLS, '')
}

// Shorter fragments (a PEM's "-----", a base64 tail such as "AB==") also occur
// in innocent output, so redacting them would mangle logs; config validation
// refuses secrets this short, and the redactor skips any that get through.
const MIN_SECRET_LENGTH = 8
const REDACTED = '[REDACTED]'

/**
 * Replaces known secret values in build log lines. Run it after sanitizeLine,
 * so control sequences spliced into a secret cannot hide it. Lines arrive one
 * at a time, so a multi-line secret (a PEM key) is matched line by line.
 */
export class SecretRedactor {
  readonly #patterns: string[]
  /** False when there is nothing to redact: callers skip redact() on the hot path. */
  readonly active: boolean

  constructor (secrets: string[]) {
    const patterns = new Set<string>()
    for (const secret of secrets) {
      for (const part of [secret, ...secret.split(/\r?\n/)]) {
        if (part.length >= MIN_SECRET_LENGTH) patterns.add(part)
      }
    }
    this.#patterns = [...patterns]
    this.active = this.#patterns.length > 0
  }

  redact (line: string): string {
    // Collect every occurrence (overlapping ones too) and redact their union:
    // replacing one secret at a time would leave the tail of an overlapping one.
    const spans: Array<[number, number]> = []
    for (const p of this.#patterns) {
      for (let i = line.indexOf(p); i !== -1; i = line.indexOf(p, i + 1)) spans.push([i, i + p.length])
    }
    if (spans.length === 0) return line
    spans.sort((a, b) => a[0] - b[0])
    let [start, end] = spans[0]!
    let out = ''
    let from = 0
    for (const [s, e] of spans) {
      if (s < end) {
        end = Math.max(end, e)
        continue
      }
      out += line.slice(from, start) + REDACTED
      from = end
      start = s
      end = e
    }
    return out + line.slice(from, start) + REDACTED + line.slice(end)
  }
}
