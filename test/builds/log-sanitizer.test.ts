import t from 'tap'
import { SecretRedactor, sanitizeLine } from '../../src/builds/log-sanitizer.js'

t.test('control sequences are stripped, text is kept', async (t) => {
  t.equal(sanitizeLine('\x1b[1;31mred\x1b[0m plain'), 'red plain', 'SGR colours')
  t.equal(sanitizeLine('\x1b]0;title\x07after'), 'after', 'OSC title, BEL-terminated')
  t.equal(sanitizeLine('\x1b]8;;https://x\x1b\\link\x1b]8;;\x1b\\'), 'link', 'OSC 8 hyperlink, ST-terminated')
  t.equal(sanitizeLine('a\x1b[2Kb\x1b[1Ac'), 'abc', 'cursor and erase sequences')
  t.equal(sanitizeLine('10%\r50%\r100%'), '10%\n50%\n100%', 'bare CR becomes a line break')
  t.equal(sanitizeLine('dos line\r'), 'dos line', 'a trailing CR is dropped')
  t.equal(sanitizeLine('bell\x07 nul\x00 del\x7f'), 'bell nul del', 'other C0 controls')
  t.equal(sanitizeLine('tab\tkept — ünïcode'), 'tab\tkept — ünïcode')
})

t.test('known secrets are redacted', async (t) => {
  const r = new SecretRedactor(['hunter2-token-XYZ'])
  t.ok(r.active)
  t.equal(r.redact('auth with hunter2-token-XYZ ok'), 'auth with [REDACTED] ok', 'in the middle of a line')
  t.equal(r.redact('hunter2-token-XYZ hunter2-token-XYZ'), '[REDACTED] [REDACTED]', 'twice on a line')
  t.equal(r.redact('hunter2-token-XYZhunter2-token-XYZ'), '[REDACTED][REDACTED]', 'back to back')
  t.equal(r.redact('hunter2-token-XY nothing secret'), 'hunter2-token-XY nothing secret', 'a prefix of a secret is kept')
  t.equal(r.redact(''), '')
})

t.test('a multi-line secret is redacted line by line', async (t) => {
  const pem = '-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n'
  const r = new SecretRedactor([pem])
  const logged = ['+ cat key.pem', '-----BEGIN PRIVATE KEY-----', 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC', '-----END PRIVATE KEY-----', 'done']
  t.same(logged.map((l) => r.redact(l)), ['+ cat key.pem', '[REDACTED]', '[REDACTED]', '[REDACTED]', 'done'])
  t.equal(r.redact('key: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC (from env)'), 'key: [REDACTED] (from env)')
})

t.test('regex metacharacters are literal', async (t) => {
  const r = new SecretRedactor(['a.b*c+d(e)', '$1^x|y[z]\\'])
  t.equal(r.redact('pw=a.b*c+d(e);'), 'pw=[REDACTED];')
  t.equal(r.redact('pw=aXb*c+d(e) aabbbccd(e)'), 'pw=aXb*c+d(e) aabbbccd(e)', 'no pattern matching')
  t.equal(r.redact('v=$1^x|y[z]\\.'), 'v=[REDACTED].')
})

t.test('nested and overlapping secrets are redacted whole', async (t) => {
  const nested = new SecretRedactor(['token-12345678', 'prefix-token-12345678-suffix'])
  t.equal(nested.redact('x prefix-token-12345678-suffix y'), 'x [REDACTED] y', 'the outer secret, not a fragment of it')
  t.equal(nested.redact('x token-12345678 y'), 'x [REDACTED] y')
  const overlap = new SecretRedactor(['AAAA-BBBB-CCCC', 'CCCC-DDDD-EEEE'])
  t.equal(overlap.redact('k=AAAA-BBBB-CCCC-DDDD-EEEE;'), 'k=[REDACTED];', 'no tail of either secret is left')
  t.equal(new SecretRedactor(['aaaaaaaa']).redact('xaaaaaaaaaaay'), 'x[REDACTED]y', 'self-overlapping occurrences')
})

t.test('short secrets and fragments are skipped', async (t) => {
  const none = new SecretRedactor(['', 'short', '1234567'])
  t.notOk(none.active, 'nothing to redact')
  t.equal(none.redact('short 1234567'), 'short 1234567')
  t.notOk(new SecretRedactor([]).active)
  const r = new SecretRedactor(['-----\nabc\nlong-enough-line\nxyz'])
  t.equal(r.redact('----- abc xyz'), '----- abc xyz', 'short lines of a multi-line secret are not redacted')
  t.equal(r.redact('got long-enough-line'), 'got [REDACTED]')
  t.equal(new SecretRedactor(['12345678']).redact('12345678'), '[REDACTED]', '8 characters is enough')
})

t.test('redaction composes with sanitizeLine', async (t) => {
  const r = new SecretRedactor(['s3cr3t-value-42'])
  const raw = 'token=s3cr3t-\x1b[31mvalue\x1b[0m-42\r'
  t.equal(r.redact(raw), raw, 'the escape codes hide the secret from a raw match')
  t.equal(r.redact(sanitizeLine(raw)), 'token=[REDACTED]', 'sanitize first, then redact')
  t.equal(r.redact(sanitizeLine('\x1b]0;s3cr3t-value-42\x07x')), 'x', 'an OSC title carrying the secret is dropped')
})
