// cosa names an architecture by its basearch (`coreos-assembler.basearch` in
// meta.json, builds/<id>/<arch>/ in the workdir): the kernel's `uname -m`.
// Docker's info answer uses the kernel's name too; Node and image platforms
// say amd64/x64 and arm64.

const BASEARCH: Record<string, string> = {
  x86_64: 'x86_64',
  amd64: 'x86_64',
  x64: 'x86_64',
  aarch64: 'aarch64',
  arm64: 'aarch64',
  s390x: 's390x',
  ppc64le: 'ppc64le',
  // Node's name on ppc64le: cosa builds little-endian only.
  ppc64: 'ppc64le'
}

/** The basearch an engine, `uname -m` or Node calls `name`; an unknown name stays as it is. */
export const basearch = (name: string) => BASEARCH[name.toLowerCase()] ?? name
