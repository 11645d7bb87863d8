// Keys in cosa's bucket layout. Every part is checked here, so no key can
// climb out of its stream's builds/ or name a hidden staging file.

export const SAFE_PART = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,254}$/

export const isSafePart = (part: string) => SAFE_PART.test(part)

function checked (...parts: string[]) {
  for (const part of parts) {
    if (!isSafePart(part)) throw new Error(`unsafe name in a store key: ${JSON.stringify(part)}`)
  }
}

export function buildsJsonKey (stream: string) {
  checked(stream)
  return `${stream}/builds/builds.json`
}

export function buildDirKey (stream: string, id: string) {
  checked(stream, id)
  return `${stream}/builds/${id}/`
}

export function buildKey (stream: string, id: string, arch: string, file: string) {
  checked(stream, id, arch, file)
  return `${stream}/builds/${id}/${arch}/${file}`
}

/** A file directly under builds/<id>/, beside the arch directories. */
export function buildFileKey (stream: string, id: string, file: string) {
  checked(stream, id, file)
  return `${stream}/builds/${id}/${file}`
}
