"""The qemu side of `cosa kola run`: reading the BLS entry and kernel out of the
qcow2 (never writing it), and one boot with the console and the debug shell on
two serial ports, each a Unix socket the command reads as the guest writes.
"""

import os
import select
import signal
import socket
import struct
import subprocess
import time

import kolacheck
from cosalib import basearch, capture, run

SECTOR = 512
MiB = 1 << 20
TB_SIZE_MIB = 256  # TCG's translation cache; the default grows to 1 GiB
FIRST_OUTPUT_KVM_S = 30  # /dev/kvm may exist and hang silently: a boot decides
LINUX_MAGIC = b"HdrS"  # the x86 boot protocol header, at 0x202 in a bzImage
# The arches cosa-lite boots. An aarch64 image would need qemu-system-aarch64,
# firmware and an arm64 kernel check; under qemu-user emulation a TCG boot
# inside it would take far longer than any timeout, so it is not offered.
QEMU_SYSTEM = {"x86_64": "qemu-system-x86_64"}


class NotBootable(Exception):
    """The image holds nothing a bootloader could start: the test is skipped."""


class Unsupported(Exception):
    """cosa-lite cannot boot this arch: the test is skipped, as kola skips a
    test that does not run on the build's arch."""


def check_arch(arch):
    if arch not in QEMU_SYSTEM:
        raise Unsupported(f"cosa-lite boot-tests {', '.join(QEMU_SYSTEM)} images only, not {arch}")


def _qemu_dd(image, out, start_sector, sectors):
    bs = MiB if start_sector % (MiB // SECTOR) == 0 and sectors % (MiB // SECTOR) == 0 else SECTOR
    k = bs // SECTOR
    # qemu-img dd (7.2) stops at count blocks from the start of the input, not
    # after the skipped ones: ask for skip + count, then cut to the size wanted.
    run("qemu-img", "dd", "-f", "qcow2", "-O", "raw", f"bs={bs}", f"skip={start_sector // k}",
        f"count={(start_sector + sectors) // k}", f"if={image}", f"of={out}")
    os.truncate(out, sectors * SECTOR)


def gpt_partitions(header):
    """{name: (first sector, sector count)} from the first 34 sectors of a disk."""
    if header[SECTOR:SECTOR + 8] != b"EFI PART":
        raise NotBootable("the disk has no GPT")
    entries_lba, count, size = struct.unpack_from("<QII", header, SECTOR + 72)
    parts = {}
    for i in range(count):
        off = entries_lba * SECTOR + i * size
        if off + size > len(header):
            break
        first, last = struct.unpack_from("<QQ", header, off + 32)
        if first:
            name = header[off + 56:off + 128].decode("utf-16-le").rstrip("\0")
            parts[name] = (first, last - first + 1)
    return parts


def bls_fields(text):
    fields = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key and not key.startswith("#"):
            fields[key] = value.strip()
    return fields


def extract_boot(image, scratch):
    """(vmlinuz, initramfs, options) of the newest BLS entry on the boot partition."""
    head = f"{scratch}/head.raw"
    _qemu_dd(image, head, 0, 34)
    with open(head, "rb") as f:
        parts = gpt_partitions(f.read())
    if "boot" not in parts:
        raise NotBootable("the disk has no partition named boot")
    boot = f"{scratch}/boot.img"
    _qemu_dd(image, boot, *parts["boot"])
    listing = capture("debugfs", "-R", "ls -p /loader/entries", boot, stderr=subprocess.DEVNULL)
    entries = sorted(line.split("/")[5] for line in listing.splitlines()
                     if line.count("/") >= 6 and line.split("/")[5].endswith(".conf"))
    if not entries:
        raise NotBootable("no BLS entry in /loader/entries on the boot partition")
    entry = bls_fields(capture("debugfs", "-R", f"cat /loader/entries/{entries[-1]}", boot,
                               stderr=subprocess.DEVNULL))
    files = {}
    for key in ("linux", "initrd"):
        if not entry.get(key):
            raise NotBootable(f"the BLS entry {entries[-1]} has no {key}")
        files[key] = f"{scratch}/{key}"
        run("debugfs", "-R", f"dump {entry[key]} {files[key]}", boot,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.unlink(boot)
    with open(files["linux"], "rb") as f:
        if f.read(0x206)[0x202:] != LINUX_MAGIC:
            raise NotBootable(f"{entry['linux']} is not a Linux kernel")
    return files["linux"], files["initrd"], entry.get("options", "")


def accel_plan():
    """kvm first when the device is usable and not refused; tcg always last."""
    if os.environ.get("COSA_NO_KVM") is None and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ["kvm", "tcg"]
    return ["tcg"]


def qemu_argv(accel, disk, kernel, initrd, append, memory_mib, socks):
    accel_args = (["-accel", "kvm", "-cpu", "host"] if accel == "kvm"
                  else ["-accel", f"tcg,tb-size={TB_SIZE_MIB}"])
    return [QEMU_SYSTEM[basearch()], "-nodefaults", "-display", "none", "-no-reboot",
            *accel_args, "-m", str(memory_mib), "-smp", "2",
            "-drive", f"file={disk},if=virtio,format=qcow2",
            "-kernel", kernel, "-initrd", initrd, "-append", append,
            "-chardev", f"socket,id=con,path={socks['con']},server=on,wait=on", "-serial", "chardev:con",
            "-chardev", f"socket,id=dbg,path={socks['dbg']},server=on,wait=on", "-serial", "chardev:dbg"]


class Boot:
    """One qemu run. `run()` returns when the probe finished, a fatal pattern
    showed, qemu exited, or the deadline passed; qemu is always killed and
    reaped before it returns."""

    def __init__(self, argv, socks, console, log, timeout_s, first_output_s=None):
        self.argv, self.socks, self.console, self.log = argv, socks, console, log
        self.timeout_s, self.first_output_s = timeout_s, first_output_s
        self.milestones, self.findings = {}, []
        self.outcome, self.probe_text = None, ""
        self._line, self._dbg, self._sent = "", "", False

    def _ms(self):
        return int((time.monotonic() - self.t0) * 1000)

    def _connect(self, path, deadline):
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                return s
            except OSError:
                s.close()
                time.sleep(0.05)
        return None

    def run(self):
        self.t0 = time.monotonic()
        deadline = self.t0 + self.timeout_s
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            con = self._connect(self.socks["con"], deadline)
            dbg = con and self._connect(self.socks["dbg"], deadline)
            if not dbg:
                self.outcome = "qemu-exited" if self.proc.poll() is not None else "timeout"
                return self
            self._loop(con, dbg, deadline)
        finally:
            self.stop()
        return self

    def _loop(self, con, dbg, deadline):
        with open(self.console, "ab") as out:
            while self.outcome is None:
                now = time.monotonic()
                if now >= deadline:
                    self.outcome = "timeout"
                    break
                if (self.first_output_s and "firstOutput" not in self.milestones
                        and now - self.t0 > self.first_output_s):
                    self.outcome = "no-output"
                    break
                ready, _, _ = select.select([con, dbg], [], [], min(0.5, deadline - now))
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        self.outcome = "qemu-exited"
                        break
                    if s is con:
                        out.write(data)
                        out.flush()
                        self._on_console(data.decode("utf-8", "replace"))
                    else:
                        self._on_debug(data.decode("utf-8", "replace"), dbg)

    def _on_console(self, text):
        self.milestones.setdefault("firstOutput", self._ms())
        lines = (self._line + text).split("\n")
        self._line = lines.pop()
        for line in lines:
            for m in kolacheck.milestones_in(line):
                if m not in self.milestones:
                    self.milestones[m] = self._ms()
                    if m == "switch-root":
                        self._dbg = ""  # a shell from the initramfs dies at switch-root
            found = kolacheck.scan(line, "console")
            self.findings += found
            if any(f["fatal"] for f in found):
                self.outcome = "fatal-pattern"

    def _on_debug(self, text, dbg):
        self.milestones.setdefault("firstOutput", self._ms())
        self._dbg += text
        if not self._sent:
            # Input typed before the shell's prompt is flushed: wait for it.
            if "switch-root" in self.milestones and kolacheck.clean(self._dbg).rstrip(" ").endswith(("#", "$")):
                self.milestones["shell"] = self._ms()
                dbg.sendall("".join(line + "\n" for line in kolacheck.PROBE_SCRIPT).encode())
                self._sent, self._dbg = True, ""
        elif f"{kolacheck.MARK}end@@" in self._dbg:
            self.probe_text = self._dbg
            self.milestones["checked"] = self._ms()
            self.outcome = "probed"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if not self.probe_text:
            self.probe_text = self._dbg
