import t from 'tap'
import { sanitizeLine } from '../../src/builds/log-sanitizer.js'

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
