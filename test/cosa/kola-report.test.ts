import { readFileSync } from 'node:fs'
import t from 'tap'
import { KOLA_EXIT_WARN, parseKolaReport } from '../../src/cosa/kola-report.js'

// cosa-lite's reports are real ones (`cosa kola run basic` on examples/bootable);
// the upstream one is written in the shape of mantle/harness/reporters/json.go.
const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')

t.test('a cosa-lite report gives its own record', async (t) => {
  const r = parseKolaReport(fixture('kola-report-cosa-lite-passed.json'))
  t.equal(r.status, 'passed')
  t.equal(r.reason, null)
  t.equal(r.accel, 'tcg')
  t.equal(r.systemState, 'running')
  t.equal(r.bootedCommit, '0490c2eb8a9ff7a8f38ce3ce89e03025f0d5f711c883d202eebeb7091fb11a43')
  t.same(r.failedUnits, [])
  t.same(Object.keys(r.milestones).sort(), ['checked', 'firstOutput', 'multi-user', 'shell', 'switch-root'])
  t.ok(r.durationMs > 0)
  const bad = parseKolaReport(fixture('kola-report-cosa-lite-emergency.json'))
  t.equal(bad.status, 'failed')
  t.equal(bad.reason, 'emergency')
  t.same(bad.findings, [{ pattern: 'emergency', source: 'console', line: '[  OK  ] Reached target emergency.target - Emergency Mode.' }])
  t.equal(bad.bootedCommit, null, 'never reached the probe')
})

t.test('an upstream report: the failed test decides, exit 77 makes it a warning', async (t) => {
  const text = fixture('kola-report-upstream.json')
  const r = parseKolaReport(text)
  t.same(r, {
    status: 'failed',
    reason: 'basic.uefi: found failed units: [example.service]',
    accel: null,
    durationMs: 93234,
    milestones: {},
    systemState: null,
    failedUnits: [],
    bootedCommit: null,
    findings: []
  })
  t.equal(parseKolaReport(text, KOLA_EXIT_WARN).status, 'warned')
  const passed = JSON.parse(text)
  passed.tests[1].result = 'PASS'
  t.equal(parseKolaReport(JSON.stringify(passed)).status, 'passed', 'passed and skipped tests pass')
  passed.tests = [passed.tests[2]]
  t.equal(parseKolaReport(JSON.stringify(passed)).status, 'skipped', 'only skipped tests: skipped')
})

t.test('a cosa-lite warning and a skip keep their status', async (t) => {
  const doc = JSON.parse(fixture('kola-report-cosa-lite-passed.json'))
  doc.tests[0]['cosa-lite'] = { ...doc.tests[0]['cosa-lite'], status: 'warned', reason: 'allowed-units-failed', failedUnits: ['a.service'] }
  t.match(parseKolaReport(JSON.stringify(doc)), { status: 'warned', failedUnits: ['a.service'] })
  doc.tests[0]['cosa-lite'] = { status: 'skipped', reason: 'not bootable: no BLS entry', accel: null, milestones: {} }
  t.match(parseKolaReport(JSON.stringify(doc)), { status: 'skipped', accel: null, durationMs: doc.tests[0].duration / 1e6 })
  doc.tests[0]['cosa-lite'] = { status: 'exploded', milestones: { firstOutput: 'soon' } }
  t.match(parseKolaReport(JSON.stringify(doc)), { status: 'failed', milestones: {} }, 'unknown values are not trusted')
})

t.test('what is not a kola report is refused', async (t) => {
  t.throws(() => parseKolaReport('not json'))
  t.throws(() => parseKolaReport('{"result":"PASS"}'), /not a kola report/)
  t.throws(() => parseKolaReport('{"tests":[1],"result":"PASS"}'), /not a kola report/)
  t.throws(() => parseKolaReport('{"tests":[],"result":"PASS"}'), /no tests/)
})
