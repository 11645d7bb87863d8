import type Docker from 'dockerode'
import { MIRROR_GITCONFIG } from '../../git/config-mirror.js'
import { JOB_PATHS, JOB_REPORT, type SecurityProfile } from '../executor.js'

// The container a build runs in, derived from configuration alone so that it
// can be inspected and tested without an engine.

export interface ContainerSpec extends Docker.ContainerCreateOptions {
  name: string
}

// Every container the service creates carries these: the reconciler finds
// its own by owner, and each container's build by id.
export const LABEL_BUILD = 'io.cosa-buildd.build-id'
export const LABEL_STREAM = 'io.cosa-buildd.stream'
export const LABEL_OWNER = 'io.cosa-buildd.owner'

/**
 * What cosa-lite needs beyond an empty set, measured: an overlay-only build
 * and its qemu image need none (root in the container owns the workdir); the
 * Debian package path (mmdebstrap in root mode: chroot, dpkg, maintainer
 * scripts) needs these.
 */
export const UNPRIVILEGED_CAPS = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'SETUID', 'SETGID', 'SYS_CHROOT', 'KILL']

/** Where things appear inside the container: the paths every job sees, and the result socket's directory. */
export const MOUNTS = {
  ...JOB_PATHS,
  api: '/run/cosa-buildd/api'
} as const
export const API_SOCKET_NAME = 'api.sock'

/**
 * Where a build's files live. `host`: directories of the service's host,
 * bind-mounted (the workdir, the config mirror read-only, the result
 * socket's directory). `volume`: the stream's named volume on the engine;
 * the config is copied into the container and the result is left in the
 * workdir (JOB_REPORT), so nothing of the service's host is mounted.
 */
export type SpecWorkspace =
  | { kind: 'host', workdir: string, mirror: string, apiSocketDir: string }
  | { kind: 'volume', volume: string }

export interface SpecInput {
  buildId: string
  stream: string
  owner: string
  image: string
  script: string
  resultToken: string
  /** The stream's secrets, as environment variables of the build. */
  env?: Record<string, string> | undefined
  resultUrl?: string | undefined
  workspace: SpecWorkspace
  profile: SecurityProfile
  networkMode: string
  /** Host devices to pass through, e.g. /dev/kvm and /dev/fuse when present. */
  devices: string[]
  memoryBytes: number
  cpus: number
  pids: number
  stopGraceSeconds: number
  /** The engine's json-file log of the container: rotated at `fileBytes`, `files` kept. */
  log: { fileBytes: number, files: number }
}

export const containerName = (buildId: string) => `cosa-buildd-${buildId}`

const hostDevice = (path: string) => ({ PathOnHost: path, PathInContainer: path, CgroupPermissions: 'rwm' })

/** Where the build leaves its result, and where it may send it and its files. */
function reportEnv (input: SpecInput) {
  const api = input.resultUrl?.replace(/\/$/, '')
  const file = `COSA_BUILDD_RESULT_FILE=${MOUNTS.workdir}/${JOB_REPORT}`
  if (input.workspace.kind === 'volume') {
    // Where the build may send its files itself, when its network reaches the API (workdir-upload.ts).
    return [file, ...(api ? [`COSA_BUILDD_UPLOAD_URL=${api}/v1/builds/${input.buildId}/workdir`] : [])]
  }
  return [
    file,
    `COSA_BUILDD_RESULT_URL=${api ?? 'http://localhost'}/v1/builds/${input.buildId}/result`,
    ...(api ? [] : [`COSA_BUILDD_RESULT_SOCKET=${MOUNTS.api}/${API_SOCKET_NAME}`])
  ]
}

export function containerSpec (input: SpecInput): ContainerSpec {
  const security: Docker.HostConfig = input.profile === 'privileged'
    ? { Privileged: true, SecurityOpt: ['label=disable'] }
    : {
        CapDrop: ['ALL'],
        CapAdd: UNPRIVILEGED_CAPS,
        SecurityOpt: ['no-new-privileges'],
        Devices: input.devices.map(hostDevice)
      }
  const ws = input.workspace
  const mounts: Docker.HostConfig = ws.kind === 'volume'
    ? { Mounts: [{ Type: 'volume', Source: ws.volume, Target: MOUNTS.workdir, ReadOnly: false }] }
    : {
        Binds: [
          `${ws.workdir}:${MOUNTS.workdir}:rw`,
          `${ws.mirror}:${MOUNTS.config}:ro`,
          ...(input.resultUrl ? [] : [`${ws.apiSocketDir}:${MOUNTS.api}:rw`])
        ]
      }
  return {
    name: containerName(input.buildId),
    Image: input.image,
    // The image's entrypoint is cosa's (dumb-init coreos-assembler).
    Cmd: ['shell', '--', 'bash', '-c', input.script],
    WorkingDir: MOUNTS.workdir,
    Tty: false,
    AttachStdin: false,
    OpenStdin: false,
    StopTimeout: input.stopGraceSeconds,
    Labels: {
      [LABEL_BUILD]: input.buildId,
      [LABEL_STREAM]: input.stream,
      [LABEL_OWNER]: input.owner
    },
    Env: [
      `COSA_BUILDD_BUILD_ID=${input.buildId}`,
      ...reportEnv(input),
      `COSA_BUILDD_TOKEN=${input.resultToken}`,
      // Lets a non-root image user clone the service-owned mirror.
      `GIT_CONFIG_GLOBAL=${MOUNTS.config}/${MIRROR_GITCONFIG}`,
      ...Object.entries(input.env ?? {}).map(([name, value]) => `${name}=${value}`)
    ],
    HostConfig: {
      ...mounts,
      Init: true,
      Tmpfs: { '/tmp': 'rw,exec,nosuid,nodev,size=2g,mode=1777' },
      Memory: input.memoryBytes,
      MemorySwap: input.memoryBytes,
      NanoCpus: Math.round(input.cpus * 1e9),
      PidsLimit: input.pids,
      NetworkMode: input.networkMode,
      LogConfig: { Type: 'json-file', Config: { 'max-size': String(input.log.fileBytes), 'max-file': String(input.log.files) } },
      AutoRemove: false,
      ...security
    }
  }
}

/** A short helper container of the service's own: no network, no capabilities, a read-only root, small limits. */
function helperHostConfig (memoryMiB: number, nanoCpus: number): Docker.HostConfig {
  return {
    NetworkMode: 'none',
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    ReadonlyRootfs: true,
    Memory: memoryMiB * 1024 * 1024,
    MemorySwap: memoryMiB * 1024 * 1024,
    NanoCpus: nanoCpus,
    PidsLimit: 64,
    LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } }
  }
}

/**
 * A short container that reads a user's ids from the image: the image's own
 * code runs in it, so it is held as tightly as a build, and tighter.
 */
/**
 * A container that only starts: the engine refuses to start one with a
 * device its host lacks, which is how a remote engine's devices are known.
 */
export function deviceProbeSpec (input: { image: string, device: string, owner: string, buildId: string }): ContainerSpec {
  return {
    name: `cosa-buildd-dev-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    Image: input.image,
    Entrypoint: ['true'],
    User: '0',
    Labels: { [LABEL_OWNER]: input.owner, [LABEL_BUILD]: input.buildId },
    HostConfig: { ...helperHostConfig(64, 5e8), Devices: [hostDevice(input.device)] }
  }
}

export function userProbeSpec (input: { image: string, user: string, owner: string, buildId: string }): ContainerSpec {
  return {
    name: `cosa-buildd-id-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
    Image: input.image,
    Entrypoint: ['sh', '-c', 'id -u "$1" && id -g "$1"', 'sh', input.user.split(':')[0]!],
    User: '0',
    Labels: { [LABEL_OWNER]: input.owner, [LABEL_BUILD]: input.buildId },
    HostConfig: helperHostConfig(64, 5e8)
  }
}

/**
 * Why a spec must not be created (empty when it may): every container this
 * service makes is checked here, at the one place that creates them. The
 * privileged profile is an operator's explicit choice and skips the
 * capability checks only.
 */
export function hardeningProblems (spec: ContainerSpec): string[] {
  const host = spec.HostConfig ?? {}
  const problems: string[] = []
  if (!host.Privileged) {
    if (!host.CapDrop?.includes('ALL')) problems.push('capabilities are not dropped (CapDrop ALL)')
    if (host.CapAdd?.some((c: string) => !UNPRIVILEGED_CAPS.includes(c))) problems.push('capabilities beyond the unprivileged profile')
    if (!host.SecurityOpt?.includes('no-new-privileges')) problems.push('no-new-privileges is not set')
  }
  if (!host.Memory || host.MemorySwap !== host.Memory) problems.push('no memory limit (or swap allowed)')
  if (!host.PidsLimit) problems.push('no process limit')
  if (!host.NanoCpus) problems.push('no CPU limit')
  if ((host.Binds ?? []).some((b) => /docker\.sock|containerd\.sock/.test(b.split(':')[0] ?? ''))) problems.push('the engine socket is mounted')
  if (!spec.Labels?.[LABEL_OWNER] || !spec.Labels?.[LABEL_BUILD]) problems.push('owner and build labels are missing')
  return problems
}

/** Where the service puts a workspace sync in the stream's volume; the sync container applies it and removes it. */
export const INCOMING = '.cosa-buildd/incoming'

// $1: the report a build leaves (the last build's must not pass for the
// next's); $2: uid:gid to own what the sync made, empty for root. Beside
// INCOMING: .paths (one a line: put in place from INCOMING, or removed when
// INCOMING lacks it), .prune (a directory) and .keep (the entries of it
// that stay; its other directories are removed).
const SYNC_SCRIPT = `set -eu
cd ${MOUNTS.workdir}
in=${INCOMING}
rm -f -- "$1"
dir=$(cat "$in.prune")
if [ -d "$dir" ] && [ ! -L "$dir" ]; then
  for d in "$dir"/*; do
    if [ -d "$d" ] && [ ! -L "$d" ] && ! grep -qxF -- "\${d##*/}" "$in.keep"; then rm -rf -- "$d"; fi
  done
fi
while IFS= read -r p; do
  rm -rf -- "$p"
  if [ -e "$in/$p" ] || [ -L "$in/$p" ]; then mkdir -p -- "$(dirname -- "$p")"; mv -- "$in/$p" "$p"; fi
done < "$in.paths"
rm -rf -- "$in" "$in.paths" "$in.prune" "$in.keep"
if [ -n "$2" ]; then find . -xdev ! -user "\${2%:*}" -exec chown -h "$2" {} +; fi
`

/**
 * A short container that applies a workspace sync (INCOMING, put there by
 * the service through the engine's API) to the stream's volume. The image's
 * own code runs in it, so it is held as tightly as the user probe, with the
 * file capabilities alone added: it runs as root to hand files to the
 * image's user.
 */
export function workspaceSyncSpec (input: { image: string, volume: string, owner: string, buildId: string, ids?: { uid: number, gid: number } | undefined }): ContainerSpec {
  return {
    name: `cosa-buildd-ws-${input.buildId}-${Date.now().toString(36)}`,
    Image: input.image,
    Entrypoint: ['sh', '-c', SYNC_SCRIPT, 'sh', JOB_REPORT, input.ids ? `${input.ids.uid}:${input.ids.gid}` : ''],
    User: '0',
    WorkingDir: MOUNTS.workdir,
    Labels: { [LABEL_OWNER]: input.owner, [LABEL_BUILD]: input.buildId },
    HostConfig: {
      ...helperHostConfig(256, 1e9),
      Mounts: [{ Type: 'volume', Source: input.volume, Target: MOUNTS.workdir, ReadOnly: false }],
      CapAdd: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER']
    }
  }
}
