// Why build logs are not read with the engine's follow stream (issue #16):
// one container floods 100,000 numbered lines with json-file rotating every
// 1 MB and 20 files kept (nothing rotates away), while `docker logs -f -t`
// follows it, as a user would. Afterwards the script prints where the
// followed copy goes back or jumps, next to the first line of each of the
// engine's json files: with Docker 20.10 every repeated block starts at the
// first line of a file (the follower re-reads a rotated-in file from its
// start), and a jump skips whole files (a follower that fell behind reopens
// the newest file). `docker logs` without -f, read afterwards, is whole.
// Reads the engine's files directly: run as root on the engine's host.
//   node --import tsx bench/engine-follow.ts
import { execa } from 'execa'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'

const LINES = Number(process.env.BENCH_LINES ?? 100_000)
const numbers = (text: string) => text.split('\n').flatMap((l) => {
  const m = /line (\d+) /.exec(l)
  return m ? [Number(m[1])] : []
})

const script = `pad=$(printf '%.0s.' $(seq 1 60)); for i in $(seq 1 ${LINES}); do echo "line $i $pad"; done`
const id = (await execa('docker', ['create', '--log-opt', 'max-size=1m', '--log-opt', 'max-file=20',
  'cosa-lite:latest', 'shell', '--', 'bash', '-c', script])).stdout.trim()
try {
  // Followed from right after the start, as the service used to (a follow of
  // a container not yet started ends at once).
  await execa('docker', ['start', id])
  const follower = execa('docker', ['logs', '-f', '-t', id], { reject: false, maxBuffer: 1e9 })
  await execa('docker', ['wait', id])
  const followed = numbers(String((await follower).stdout))
  const whole = numbers(String((await execa('docker', ['logs', id], { maxBuffer: 1e9 })).stdout))

  const logPath = (await execa('docker', ['inspect', '-f', '{{.LogPath}}', id])).stdout.trim()
  const files = (await readdir(dirname(logPath))).filter((f) => f.startsWith(`${id}-json.log`))
  const firsts = new Set<number>()
  for (const f of files) firsts.add(numbers((await readFile(join(dirname(logPath), f), 'utf8')).slice(0, 300))[0]!)

  let repeated = 0
  let last = 0
  const jumps: string[] = []
  // Where the copy goes back: the line before, and the first line repeated.
  const back: Array<{ after: number, from: number }> = []
  for (const [i, n] of followed.entries()) {
    if (n <= last) {
      repeated++
      if (n !== followed[i - 1]! + 1) back.push({ after: followed[i - 1]!, from: n })
    } else if (n > last + 1) jumps.push(`${last} → ${n}`)
    last = Math.max(last, n)
  }
  console.log(`docker ${(await execa('docker', ['version', '-f', '{{.Server.Version}}'])).stdout}, ${LINES} lines, json-file 1m × 20`)
  console.log(`docker logs -f: ${followed.length} lines, ${repeated} repeated, ${new Set(followed).size} distinct, jumps: ${jumps.join(', ') || 'none'}`)
  console.log(`first lines of the engine's files: ${[...firsts].sort((a, b) => a - b).join(', ')}`)
  console.log(`blocks that go back: ${back.map((b) => `${b.after} → ${b.from}${firsts.has(b.from) ? ' (a file starts here)' : ''}`).join(', ') || 'none'}`)
  console.log(`docker logs (not followed): ${whole.length} lines, in order: ${whole.every((n, i) => n === i + 1)}`)
} finally {
  await execa('docker', ['rm', '-f', id], { reject: false })
}
