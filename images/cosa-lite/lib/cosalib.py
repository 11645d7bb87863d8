"""Shared helpers for the cosa-lite commands: the on-disk contract of a cosa
workdir (builds.json, builds/latest, meta.json) and small process helpers.

Everything that writes a file another tool reads (builds.json, meta.json,
builds/latest) goes through an atomic rename, because a service may read the
workdir while a command runs and a SIGKILL must never leave half a file.
"""

import argparse
import datetime
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys

import yaml

LIBDIR = os.path.dirname(os.path.abspath(__file__))
SCHEMA_VERSION = "1.0.0"
DEFAULT_NAME = "cosa-lite"


def info(msg):
    print(msg, flush=True)


def fatal(msg, code=1):
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


class ArgumentParser(argparse.ArgumentParser):
    """cosa's commands parse with getopt and exit 1 on a bad flag; argparse
    would exit 2, which a caller could mistake for a different failure."""

    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(1)


def _excepthook(kind, value, tb):
    # A failed tool already printed its own error; a traceback adds only noise.
    if isinstance(value, subprocess.CalledProcessError):
        cmd = " ".join(map(str, value.cmd[:4]))
        print(f"error: `{cmd}` failed with exit code {value.returncode}", file=sys.stderr)
        sys.exit(1)
    sys.__excepthook__(kind, value, tb)


sys.excepthook = _excepthook


def run(*argv, **kw):
    kw.setdefault("check", True)
    return subprocess.run([str(a) for a in argv], **kw)


def capture(*argv, **kw):
    return run(*argv, stdout=subprocess.PIPE, text=True, **kw).stdout.strip()


def basearch():
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact(path):
    return {"path": os.path.basename(path), "sha256": sha256_file(path),
            "size": os.path.getsize(path)}


def load_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, obj):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def symlink_atomic(target, path):
    tmp = f"{path}.tmp.{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, path)


def rmtree(path):
    """ostree marks deployment roots immutable (chattr +i) where it may; clear
    that first or the delete fails with EPERM."""
    if not os.path.lexists(path):
        return
    subprocess.run(["chattr", "-R", "-i", path], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(path)


def require_workdir():
    for d in ("src/config", "builds"):
        if not os.path.isdir(d):
            fatal(f"{d} is missing: run `cosa init` in this directory first")


# --- config repository --------------------------------------------------------

def _merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, list) and isinstance(base.get(k), list):
            base[k] = base[k] + v
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def load_yaml_with_includes(path, seen=()):
    """rpm-ostree's `include:` (a file or list), merged depth first."""
    if path in seen:
        fatal(f"include loop at {path}")
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, dict):
        fatal(f"{path}: expected a mapping at the top level")
    includes = doc.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    merged = {}
    for inc in includes:
        _merge(merged, load_yaml_with_includes(
            os.path.join(os.path.dirname(path), inc), seen + (path,)))
    return _merge(merged, doc)


def load_manifest():
    manifest = load_yaml_with_includes("src/config/manifest.yaml")
    # As rpm-ostree does, so that one config names each arch's branch.
    if isinstance(manifest.get("ref"), str):
        manifest["ref"] = manifest["ref"].replace("${basearch}", basearch())
    return manifest


def load_image_yaml():
    return load_yaml_with_includes("src/config/image.yaml")


def build_name(manifest):
    meta = manifest.get("metadata") or {}
    return meta.get("name") or (manifest.get("rojig") or {}).get("name") or DEFAULT_NAME


def config_git():
    """Best effort, as cosa: a config that is not a git checkout has no rev."""
    def git(*args):
        r = subprocess.run(["git", "-C", "src/config", *args], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else ""
    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    return {"commit": commit, "origin": git("config", "remote.origin.url") or "unknown",
            "branch": git("rev-parse", "--abbrev-ref", "HEAD") or "HEAD",
            "dirty": "true" if git("status", "--porcelain", "--untracked-files=no") else "false"}


# --- builds/ -------------------------------------------------------------------

class Builds:
    """builds/builds.json with cosa's rules: newest first, one entry per id
    with its arches, schema-version 1.x, under builds/.builds.json.lock."""

    path = "builds/builds.json"

    def __init__(self):
        os.makedirs("builds", exist_ok=True)
        self._lock = open("builds/.builds.json.lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        if os.path.exists(self.path):
            self.data = load_json(self.path)
            version = self.data.get("schema-version", "0.0.1")
            if version.split(".")[0] != "1":
                fatal(f"{self.path}: unsupported schema-version {version}")
        else:
            self.data = {"schema-version": SCHEMA_VERSION, "builds": [],
                         "timestamp": rfc3339(utcnow())}

    @property
    def ids(self):
        return [b["id"] for b in self.data["builds"]]

    def latest(self):
        return self.ids[0] if self.ids else None

    def insert(self, build_id, arch):
        for b in self.data["builds"]:
            if b["id"] == build_id:
                if arch in b["arches"]:
                    fatal(f"build {build_id} already has arch {arch}")
                b["arches"].append(arch)
                return
        self.data["builds"].insert(0, {"id": build_id, "arches": [arch]})

    def tagged(self):
        return {t["target"] for t in self.data.get("tags", [])}

    def save(self):
        self.data["timestamp"] = rfc3339(utcnow())
        write_json(self.path, self.data)
        latest = self.latest()
        if latest:
            symlink_atomic(latest, "builds/latest")
        elif os.path.lexists("builds/latest"):
            os.unlink("builds/latest")

    def close(self):
        self._lock.close()


def latest_meta(arch):
    path = f"builds/latest/{arch}/meta.json"
    return load_json(path) if os.path.exists(path) else None


def build_dir(build_id, arch):
    return f"builds/{build_id}/{arch}"


def prune_builds(builds, keep, arch):
    """Keep the newest `keep` untagged builds (0 keeps all); tagged builds are
    never pruned. Returns the ids removed."""
    if keep <= 0:
        return []
    tagged = builds.tagged()
    kept, removed, untagged = [], [], 0
    for entry in builds.data["builds"]:
        if entry["id"] in tagged:
            kept.append(entry)
        elif untagged < keep:
            kept.append(entry)
            untagged += 1
        else:
            removed.append(entry["id"])
    for build_id in removed:
        info(f"Pruning build {build_id}")
        rmtree(f"builds/{build_id}")
    builds.data["builds"] = kept
    return removed
