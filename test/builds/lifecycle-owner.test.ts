import { readdir, readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import t from 'tap'
import { ROOT } from '../helpers.js'

// A lint rule, as a test: only the lifecycle writes a build's state and
// phase. It alone calls the build repository's writers of them, and in that
// repository every statement that writes `state` or `phase` is in one of those writers,
// each of which appends its outbox event in the same transaction.

const WRITERS = ['insertBuild', 'transition', 'claimNext']
const OWNER = 'src/builds/lifecycle.ts'
const STORE = 'src/store/build-repository.ts'

async function sources (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  const nested = await Promise.all(entries.map((e) => e.isDirectory() ? sources(join(dir, e.name)) : [join(dir, e.name)]))
  return nested.flat().filter((f) => f.endsWith('.ts'))
}

/** The methods of a class source, by name: a line at two spaces' indent that opens one, up to the next. */
function methods (source: string) {
  const out = new Map<string, string>()
  const starts = [...source.matchAll(/^ {2}(?:async )?(?:readonly )?#?(\w+) (?:\(|=)/gm)]
  for (const [i, m] of starts.entries()) out.set(m[1]!, source.slice(m.index, starts[i + 1]?.index ?? source.length))
  return out
}

t.test('only the lifecycle calls the store\'s writers of build state', async (t) => {
  const offenders: string[] = []
  const call = new RegExp(`\\b(store|#store)\\s*\\.\\s*builds\\s*\\.\\s*(${WRITERS.join('|')})\\s*\\(`)
  for (const file of await sources(join(ROOT, 'src'))) {
    const name = relative(ROOT, file)
    if (name === OWNER || name.startsWith('src/store/')) continue
    const text = await readFile(file, 'utf8')
    for (const [i, line] of text.split('\n').entries()) if (call.test(line)) offenders.push(`${name}:${i + 1}: ${line.trim()}`)
  }
  t.same(offenders, [], 'no other module calls insertBuild, transition or claimNext')
  const owner = await readFile(join(ROOT, OWNER), 'utf8')
  for (const w of WRITERS) t.match(owner, new RegExp(`#store\\.builds\\.${w}\\(`), `the lifecycle is where ${w} is called`)
})

/** What the UPDATE statements of a method body set (up to WHERE), and whether it inserts builds. */
const setClauses = (body: string) => [...body.matchAll(/UPDATE builds SET((?:(?!WHERE)[^`])*)/g)].map((m) => m[1]!).join(' ')
const writesState = (body: string) => /\b(state|phase)\s*=/.test(setClauses(body)) || /INSERT INTO builds\b/.test(body)

t.test('in the build repository, state and phase are written only with an event', async (t) => {
  const source = await readFile(join(ROOT, STORE), 'utf8')
  const all = methods(source)
  const writing = [...all].filter(([, body]) => writesState(body)).map(([name]) => name)
  t.same(writing.sort(), ['claimNext', 'insert', 'transition'], 'only the writers write state')
  for (const name of writing) {
    const body = all.get(name)!
    t.ok(/appendEvent\(|#changeTx\(|#claimTx\(/.test(body), `${name} appends its event in the same transaction`)
  }
  t.match(all.get('update'), /patch: QuietPatch[,)]/, 'update() takes only fields no event is about (no state, no phase)')
})
