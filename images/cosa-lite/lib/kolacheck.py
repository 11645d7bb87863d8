"""What `cosa kola run basic` concludes from a boot: the console and journal
pattern scan, the parser for the debug-shell probe, and the verdict. Pure
functions on text, so they are unit-tested on fixture excerpts without a VM.
"""

import re

# kola fails a test whose console or journal shows one of these. The
# emergency-mode lines are dracut's and systemd's own wording, which kola's
# list does not catch (a wrong ostree= argument ends there, silently).
# fatal: the boot cannot recover, so the test stops at once.
PATTERNS = [
    ("emergency", True, r"Press Enter for emergency shell|Starting Emergency Shell|You are in emergency mode"
                        r"|Entering emergency mode|Reached target .*[Ee]mergency"
                        r"|Press Enter for maintenance|Give root password for maintenance"),
    ("dracut-fatal", True, r"dracut: Refusing to continue"),
    ("kernel-panic", True, r"Kernel panic - not syncing"),
    ("kernel-oops", False, r"\bOops: "),
    ("kernel-bug", False, r"kernel BUG at "),
    ("kernel-warning", False, r"WARNING: CPU: \d+ PID: \d+ at "),
    ("io-offline", False, r"rejecting I/O to offline device"),
    ("generator-failure", False, r"/system-generators/\S+ (?:failed|terminated) with exit status"),
    ("segfault", False, r"segfault at [0-9a-f]+ ip|=11/SEGV|status=11/SEGV"),
    ("core-dump", False, r"dumped core"),
]
_COMPILED = [(name, fatal, re.compile(rx)) for name, fatal, rx in PATTERNS]

# Console milestones: the first line that shows each stage was reached.
MILESTONES = [
    ("switch-root", re.compile(r"Switching root|Reached target .*Switch Root")),
    ("multi-user", re.compile(r"Reached target .*Multi-User System")),
]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean(text):
    """Serial output as text: no colour codes, no carriage returns."""
    return _ANSI.sub("", text).replace("\r", "")


def scan(text, source):
    """Findings in complete lines of text: [{pattern, fatal, source, line}]."""
    found = []
    for line in clean(text).split("\n"):
        for name, fatal, rx in _COMPILED:
            if rx.search(line):
                found.append({"pattern": name, "fatal": fatal, "source": source,
                              "line": line.strip()[:300]})
    return found


def milestones_in(line):
    return [name for name, rx in MILESTONES if rx.search(clean(line))]


MARK = "@@KOLA:"
# Sent to the debug shell one line at a time, after its prompt appeared. The
# marker is printed with a split string so that an echoed command line never
# looks like output. Kept under the tty's 4 KiB type-ahead buffer.
PROBE_SCRIPT = [
    "stty -echo; PS1=; PS2=; export SYSTEMD_PAGER= SYSTEMD_COLORS=0 TERM=dumb",
    "m() { printf '\\n%s%s@@\\n' '@@KO''LA:' \"$1\"; }",
    "m state; timeout 90 systemctl is-system-running --wait",
    "m show; systemctl show -p SystemState -p NFailedUnits",
    "m failed; systemctl list-units --all --state=failed --no-legend --plain | awk '{print $1}'",
    "m restarting; systemctl list-units --all --state=auto-restart --no-legend --plain | awk '{print $1}'",
    "m restarts; systemctl show -p Id -p NRestarts '*.service' | awk -F= '$1==\"Id\"{i=$2} $1==\"NRestarts\"{n=$2} NF==0&&i{print i, n; i=\"\"} END{if(i)print i, n}'",
    "m multiuser; systemctl is-active multi-user.target",
    "m root; findmnt -n -o SOURCE /",
    "m usr; findmnt -n -o OPTIONS /usr; touch /usr/.kola-probe 2>/dev/null && echo writable || echo not-writable",
    "m boot; findmnt -n -o SOURCE /boot; ostree admin status 2>&1 | head -n 5",
    "m analyze; systemd-analyze 2>&1 | head -n 3",
    "m journal; journalctl -b -o short-monotonic --no-pager | gzip -1 | base64 -w 76",
    "m end",
]
RESTART_LOOP = 3  # NRestarts at which a unit counts as restarting in a loop


def probe_sections(text):
    """Splits probe output at the markers: {section: text}. A section is
    complete only when a later marker follows it; `end` is the last one."""
    out, name, buf = {}, None, []
    for line in clean(text).split("\n"):
        m = re.fullmatch(r"@@KOLA:(\w+)@@", line.strip())
        if m:
            if name:
                out[name] = "\n".join(buf).strip()
            name, buf = m.group(1), []
        elif name:
            buf.append(line)
    if name:
        out[name] = "\n".join(buf).strip()
    return out


def _props(text):
    return dict(line.split("=", 1) for line in text.split("\n") if "=" in line)


def parse_probe(text):
    """The system as the probe saw it; missing sections give None."""
    s = probe_sections(text)
    show = _props(s.get("show", ""))
    restarts = [line.split() for line in s.get("restarts", "").split("\n")]
    looping = sorted({*s.get("restarting", "").split(),
                      *[r[0] for r in restarts
                        if len(r) == 2 and r[1].isdigit() and int(r[1]) >= RESTART_LOOP]})
    root = re.search(r"/deploy/([0-9a-f]{64})\.\d+", s.get("root", ""))
    usr = s.get("usr", "").split("\n")
    return {
        "systemState": (s.get("state") or "").split("\n")[-1].strip() or show.get("SystemState"),
        "nFailedUnits": int(show["NFailedUnits"]) if show.get("NFailedUnits", "").isdigit() else None,
        "failedUnits": [u for u in s.get("failed", "").split() if u],
        "restarting": looping,
        "multiUser": s.get("multiuser", "").strip() or None,
        "bootedCommit": root.group(1) if root else None,
        "usrReadOnly": ("usr" in s and usr[0].split(",")[0] == "ro" and "not-writable" in usr[-1]),
        "bootMounted": bool(s.get("boot", "").split("\n")[0].startswith("/dev/")),
        "analyze": s.get("analyze") or None,
        "journalB64": s.get("journal") if "end" in s else None,
        "complete": "end" in s,
    }


def verdict(probe, findings, commit, allowed_units=()):
    """(status, reason, failedUnits, problems): passed, warned (only allowed
    units failed), or failed with the first problem as the reason."""
    problems = [f"{f['pattern']}: {f['line']}" for f in findings]
    failed = probe["failedUnits"]
    unexpected = [u for u in failed if u not in allowed_units]
    if probe["systemState"] != "running" and not (failed and not unexpected):
        problems.append(f"system state is {probe['systemState']}, not running")
    if unexpected:
        problems.append(f"failed units: {', '.join(unexpected)}")
    if probe["restarting"]:
        problems.append(f"units restarting in a loop: {', '.join(probe['restarting'])}")
    if probe["multiUser"] != "active":
        problems.append(f"multi-user.target is {probe['multiUser']}")
    if probe["bootedCommit"] != commit:
        problems.append(f"booted commit {probe['bootedCommit']} is not the build's {commit}")
    if not probe["usrReadOnly"]:
        problems.append("/usr is writable")
    if problems:
        reason = ("emergency" if any(f["pattern"] == "emergency" for f in findings)
                  else findings[0]["pattern"] if findings
                  else "degraded" if unexpected or probe["systemState"] == "degraded"
                  else "check")
        return "failed", reason, failed, problems
    if failed:
        return "warned", "allowed-units-failed", failed, [f"allowed units failed: {', '.join(failed)}"]
    return "passed", None, failed, []
