"""Composing a Debian root filesystem with mmdebstrap, for manifests that list
`packages`. `cosa fetch` resolves and downloads; `cosa build` then installs from
cache/ alone (`--skip=update`, package lists and .debs synced in), so a build
runs without network and hashes exactly the versions that fetch resolved.
"""

import os

from cosalib import fatal, run

CACHE_DEBS = "cache/debs"
CACHE_LISTS = "cache/apt-lists"
LOCKFILE = "cache/pkglist.lock"


def settings(manifest):
    deb = manifest.get("debian") or {}
    return {
        "suite": deb.get("suite", "bookworm"),
        "variant": deb.get("variant", "minbase"),
        "mirror": deb.get("mirror") or os.environ.get("COSA_LITE_MIRROR", "http://deb.debian.org/debian"),
        "components": deb.get("components", ["main"]),
        # e.g. INITRD: "No" to skip the kernel hook's initramfs when a
        # postprocess script makes the OSTree one anyway.
        "env": {str(k): str(v) for k, v in (deb.get("env") or {}).items()},
    }


def packages(manifest):
    pkgs = manifest.get("packages") or []
    return sorted({p for entry in pkgs for p in str(entry).split()})


def _mmdebstrap(manifest, target, extra):
    s = settings(manifest)
    here = os.getcwd()
    argv = ["mmdebstrap", "--mode=root", f"--variant={s['variant']}",
            f"--components={','.join(s['components'])}",
            f"--include={','.join(packages(manifest))}",
            # A container without CAP_SYS_ADMIN cannot mount /proc or /sys.
            "--skip=chroot/mount", "--skip=essential/unlink",
            # The tree is committed to ostree afterwards; dpkg's fsyncs buy nothing.
            "--dpkgopt=force-unsafe-io",
            f"--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives {here}/{CACHE_DEBS}",
            f"--setup-hook=sync-in {here}/{CACHE_DEBS} /var/cache/apt/archives/",
            *extra, s["suite"], target, s["mirror"]]
    run(*argv, env={**os.environ, **s["env"]})


def fetch(manifest):
    here = os.getcwd()
    os.makedirs(CACHE_LISTS, exist_ok=True)
    _mmdebstrap(manifest, "/dev/null", [
        "--skip=cleanup/apt/lists",
        f"--customize-hook=sync-out /var/cache/apt/archives {here}/{CACHE_DEBS}",
        f"--customize-hook=sync-out /var/lib/apt/lists {here}/{CACHE_LISTS}",
        "--customize-hook=chroot \"$1\" dpkg-query -W -f='${Package}=${Version}\\n' "
        f"| sort > {here}/{LOCKFILE}.tmp",
    ])
    os.rename(f"{LOCKFILE}.tmp", LOCKFILE)


def resolved(manifest):
    """The package versions fetch resolved; build refuses to guess them."""
    if not os.path.exists(LOCKFILE):
        fatal("Must fetch before building: the manifest lists packages (run `cosa fetch`)")
    with open(LOCKFILE) as f:
        lock = f.read().split()
    names = {entry.split("=", 1)[0] for entry in lock}
    missing = [p for p in packages(manifest) if p not in names]
    if missing:
        fatal(f"cache/ lacks {', '.join(missing)}: the manifest changed since `cosa fetch`; fetch again")
    return lock


def compose(manifest, rootfs):
    here = os.getcwd()
    _mmdebstrap(manifest, rootfs, [
        "--skip=update",
        f"--setup-hook=mkdir -p \"$1\"/var/lib/apt/lists",
        f"--setup-hook=sync-in {here}/{CACHE_LISTS} /var/lib/apt/lists/",
    ])
