// The boot test (`cosa kola run basic`) of examples/bootable under TCG, beside
// a bare qemu boot of the same image to its login prompt, measured the same
// way: wall time of a `docker run` of cosa-lite under the unprivileged profile
// with a memory limit, from start to exit. Both extract the kernel the same
// way; the bare boot stops at "login:", the boot test at its last probe.
//   npm run bench bench/boot-test.ts   (BENCH_RUNS, default 3; BENCH_WORKDIR
//   reuses a workdir that already holds a bootable build)
import { execa } from 'execa'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { UNPRIVILEGED_CAPS } from '../src/executor/docker/container-spec.js'
import { exampleRepo, fmt, median } from './lib.js'

const IMAGE = process.env.COSA_LITE_IMAGE ?? 'cosa-lite:latest'
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const GUEST_MIB = 2048

const docker = (work: string, args: string[], extra: string[] = []) => execa('docker', ['run', '--rm',
  '--cap-drop=ALL', ...UNPRIVILEGED_CAPS.map((c) => `--cap-add=${c}`), '--security-opt=no-new-privileges',
  `--memory=${GUEST_MIB + 512}m`, `--memory-swap=${GUEST_MIB + 512}m`, '-v', `${work}:/srv`, ...extra, IMAGE, ...args],
{ all: true })

// The bare boot: the same kernel extraction and qemu flags, console on stdout,
// stopped at the login prompt.
const BARE = `
import glob, os, subprocess, sys, tempfile, time
sys.path.insert(0, "/usr/lib/coreos-assembler")
import kolaqemu
image = sorted(glob.glob("/srv/builds/latest/x86_64/*-qemu.x86_64.qcow2"))[-1]
scratch = tempfile.mkdtemp(dir="/srv/tmp")
kernel, initrd, options = kolaqemu.extract_boot(image, scratch)
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, scratch + "/o.qcow2"], check=True)
q = subprocess.Popen(["qemu-system-x86_64", "-nodefaults", "-display", "none", "-no-reboot",
    "-accel", "tcg,tb-size=256", "-m", "${GUEST_MIB}", "-smp", "2",
    "-drive", "file=" + scratch + "/o.qcow2,if=virtio,format=qcow2",
    "-kernel", kernel, "-initrd", initrd, "-append", options, "-serial", "stdio"],
    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
buf = b""
while b"login:" not in buf[-4096:]:
    chunk = q.stdout.read1(65536)
    if not chunk:
        sys.exit("qemu exited before the login prompt")
    buf += chunk
q.kill(); q.wait()
subprocess.run(["rm", "-rf", scratch])
print("login")
`

async function timed (fn: () => Promise<unknown>) {
  const t0 = performance.now()
  await fn()
  return (performance.now() - t0) / 1000
}

const work = process.env.BENCH_WORKDIR ?? await mkdtemp(join(tmpdir(), 'cosa-bench-boot-'))
if (!process.env.BENCH_WORKDIR) {
  const repo = await exampleRepo('bootable')
  for (const [net, ...args] of [['none', 'init', `file://${repo}`], ['host', 'fetch'], ['none', 'build'], ['none', 'osbuild', 'qemu']]) {
    await docker(work, args, [`--network=${net}`, '-v', `${repo}:${repo}:ro`])
  }
}

const kola: number[] = []
const bare: number[] = []
const milestones: Array<Record<string, number>> = []
for (let i = 0; i < RUNS; i++) {
  kola.push(await timed(() => docker(work, ['kola', 'run', 'basic'], ['--network=none'])))
  const report = JSON.parse(await readFile(join(work, 'tmp/kola/reports/report.json'), 'utf8'))
  milestones.push(report.tests[0]['cosa-lite'].milestones)
  bare.push(await timed(() => docker(work, ['shell', '--', 'python3', '-c', BARE], ['--network=none'])))
}

const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
const row = (what: string, xs: number[]) => `| ${what} | ${fmt(median(xs), 1)} | ${xs.map((x) => fmt(x, 1)).join(', ')} |`
console.log(`Median of ${RUNS} runs, TCG, -m ${GUEST_MIB} -smp 2; load average at the end: ${load}\n`)
console.log('| what | median s | runs (s) |\n|---|---:|---|')
console.log(row('bare qemu boot to the login prompt', bare))
console.log(row('`cosa kola run basic` (boot + probe + journal)', kola))
console.log('\nboot-test milestones (s from qemu start):')
for (const m of milestones) console.log(Object.entries(m).map(([k, v]) => `${k} ${fmt(v / 1000, 1)}`).join(', '))
