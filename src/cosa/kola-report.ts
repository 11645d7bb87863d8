// kola's tmp/kola/reports/report.json (mantle/harness/reporters/json.go:
// {tests: [{name, subtests, result, duration (ns), output}], result, platform,
// version}) read into one boot-test record. cosa-lite's `cosa kola run` adds a
// `cosa-lite` object to each test with what it measured; upstream's report
// has only the test results, so those fields stay empty.

export type BootTestStatus = 'passed' | 'failed' | 'warned' | 'skipped'

export interface BootTestFinding { pattern: string, source: string, line: string }

export interface BootTestRecord {
  status: BootTestStatus
  reason: string | null
  accel: 'kvm' | 'tcg' | null
  durationMs: number
  milestones: Record<string, number>
  systemState: string | null
  failedUnits: string[]
  bootedCommit: string | null
  findings: BootTestFinding[]
}

/** kola's exit code when only warn-only tests failed. */
export const KOLA_EXIT_WARN = 77

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown) => typeof v === 'string' ? v : null
const strings = (v: unknown) => Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []

function milestones (v: unknown): Record<string, number> {
  if (!isObject(v)) return {}
  return Object.fromEntries(Object.entries(v).filter((e): e is [string, number] => Number.isFinite(e[1])))
}

function findings (v: unknown): BootTestFinding[] {
  if (!Array.isArray(v)) return []
  return v.filter(isObject).map((f) => ({ pattern: str(f.pattern) ?? 'unknown', source: str(f.source) ?? 'console', line: str(f.line) ?? '' }))
}

const STATUSES: readonly BootTestStatus[] = ['passed', 'failed', 'warned', 'skipped']

/** What cosa-lite recorded for one test. */
function fromCosaLite (x: Json, durationMs: number): BootTestRecord {
  const status = STATUSES.find((s) => s === x.status) ?? 'failed'
  const accel = x.accel === 'kvm' || x.accel === 'tcg' ? x.accel : null
  return {
    status,
    reason: str(x.reason),
    accel,
    durationMs: Number.isFinite(x.durationMs) ? x.durationMs as number : durationMs,
    milestones: milestones(x.milestones),
    systemState: str(x.systemState),
    failedUnits: strings(x.failedUnits),
    bootedCommit: str(x.bootedCommit),
    findings: findings(x.findings)
  }
}

/** Upstream's tests: a failed one decides, warned when kola exited 77; all skipped is skipped. */
function fromKola (tests: Json[], exitCode: number | undefined): BootTestRecord {
  const durationMs = Math.round(tests.reduce((sum, t) => sum + (Number.isFinite(t.duration) ? t.duration as number : 0), 0) / 1e6)
  const failed = tests.find((t) => t.result === 'FAIL')
  const allSkipped = tests.length > 0 && tests.every((t) => t.result === 'SKIP')
  const status: BootTestStatus = failed
    ? (exitCode === KOLA_EXIT_WARN ? 'warned' : 'failed')
    : allSkipped ? 'skipped' : 'passed'
  const firstLine = failed ? (str(failed.output) ?? '').split('\n').find((l) => l.trim()) : undefined
  return {
    status,
    reason: failed ? `${str(failed.name) ?? 'test'}${firstLine ? `: ${firstLine.trim().slice(0, 300)}` : ''}` : null,
    accel: null,
    durationMs,
    milestones: {},
    systemState: null,
    failedUnits: [],
    bootedCommit: null,
    findings: []
  }
}

/**
 * Reads report.json's text. `exitCode` is kola's, when known: upstream marks
 * a failed warn-only test FAIL and signals the warning only by exiting 77.
 * Throws when the text is not a kola report.
 */
export function parseKolaReport (text: string, exitCode?: number): BootTestRecord {
  const doc: unknown = JSON.parse(text)
  if (!isObject(doc) || !Array.isArray(doc.tests) || !doc.tests.every(isObject) || typeof doc.result !== 'string') {
    throw new Error('not a kola report: tests[] and result are required')
  }
  const tests = doc.tests as Json[]
  if (tests.length === 0) throw new Error('the kola report lists no tests')
  const ours = tests.filter((t) => isObject(t['cosa-lite']))
  if (ours.length === 0) return fromKola(tests, exitCode)
  // cosa-lite runs one test per boot; with several, the worst one decides.
  const records = ours.map((t) => fromCosaLite(t['cosa-lite'] as Json, Math.round((t.duration as number ?? 0) / 1e6)))
  const rank = (r: BootTestRecord) => ['failed', 'warned', 'passed', 'skipped'].indexOf(r.status)
  return records.reduce((worst, r) => rank(r) < rank(worst) ? r : worst)
}
