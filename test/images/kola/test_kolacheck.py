"""Unit tests of cosa-lite's kolacheck (pattern scan, probe parser, verdict) on
excerpts of real boots of examples/bootable. Run in the cosa-lite image by
test/images/kola-check.test.ts: python3 -m unittest discover."""

import os
import unittest

import kolacheck

HERE = os.path.dirname(os.path.abspath(__file__))
COMMIT = "0490c2eb8a9ff7a8f38ce3ce89e03025f0d5f711c883d202eebeb7091fb11a43"


def fixture(name):
    with open(os.path.join(HERE, "fixtures", name), encoding="utf-8") as f:
        return f.read()


class Scan(unittest.TestCase):
    def test_a_good_boot_has_no_findings(self):
        self.assertEqual(kolacheck.scan(fixture("console-good.txt"), "console"), [])

    def test_dracut_emergency_mode_is_fatal(self):
        found = kolacheck.scan(fixture("console-emergency.txt"), "console")
        self.assertTrue(found)
        self.assertEqual({f["pattern"] for f in found}, {"emergency"})
        self.assertTrue(all(f["fatal"] for f in found))

    def test_kernel_failures(self):
        text = ("[   12.1] Kernel panic - not syncing: VFS: Unable to mount root fs\n"
                "[    3.2] Oops: 0000 [#1] PREEMPT SMP NOPTI\n"
                "[    4.0] WARNING: CPU: 1 PID: 77 at mm/page_alloc.c:5525 __alloc_pages+0x1/0x2\n"
                "systemd[1]: foo.service: Main process exited, code=dumped, status=11/SEGV\n")
        self.assertEqual([(f["pattern"], f["fatal"]) for f in kolacheck.scan(text, "journal")],
                         [("kernel-panic", True), ("kernel-oops", False),
                          ("kernel-warning", False), ("segfault", False)])

    def test_colour_codes_do_not_hide_a_match(self):
        line = "[\x1b[0;1;31mFAILED\x1b[0m] Reached target \x1b[0;1;39memergency.target\x1b[0m - Emergency Mode.\r\n"
        self.assertEqual([f["pattern"] for f in kolacheck.scan(line, "console")], ["emergency"])

    def test_unit_names_with_emergency_in_a_normal_boot_do_not_match(self):
        self.assertEqual(kolacheck.scan("Listening on systemd-coredump.socket - Process Core Dump Socket.\n"
                                        "emergency.service: skipped\n", "journal"), [])

    def test_milestones(self):
        self.assertEqual(kolacheck.milestones_in(
            "[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39minitrd-switch-root.target\x1b[0m - Switch Root."),
            ["switch-root"])
        self.assertEqual(kolacheck.milestones_in(
            "[   96.1] systemd[1]: Reached target multi-user.target - Multi-User System."), ["multi-user"])


class Probe(unittest.TestCase):
    def test_a_healthy_system(self):
        p = kolacheck.parse_probe(fixture("probe-good.txt"))
        self.assertTrue(p["complete"])
        self.assertEqual(p["systemState"], "running")
        self.assertEqual(p["nFailedUnits"], 0)
        self.assertEqual(p["failedUnits"], [])
        self.assertEqual(p["restarting"], [])
        self.assertEqual(p["multiUser"], "active")
        self.assertEqual(p["bootedCommit"], COMMIT)
        self.assertTrue(p["usrReadOnly"])
        self.assertTrue(p["bootMounted"])
        self.assertTrue(p["journalB64"])
        self.assertEqual(kolacheck.verdict(p, [], COMMIT), ("passed", None, [], []))

    def test_a_degraded_system_names_its_unit(self):
        p = kolacheck.parse_probe(fixture("probe-degraded.txt"))
        self.assertEqual(p["systemState"], "degraded")
        self.assertEqual(p["failedUnits"], ["kola-fail.service"])
        status, reason, failed, problems = kolacheck.verdict(p, [], COMMIT)
        self.assertEqual((status, reason, failed), ("failed", "degraded", ["kola-fail.service"]))
        self.assertIn("failed units: kola-fail.service", problems)
        # Allowed to fail: only a warning (kola's exit 77).
        self.assertEqual(kolacheck.verdict(p, [], COMMIT, ["kola-fail.service"])[:2],
                         ("warned", "allowed-units-failed"))

    def test_a_unit_restarting_in_a_loop_fails(self):
        text = fixture("probe-good.txt").replace("dbus.service 0", "dbus.service 5")
        p = kolacheck.parse_probe(text)
        self.assertEqual(p["restarting"], ["dbus.service"])
        self.assertEqual(kolacheck.verdict(p, [], COMMIT)[0], "failed")

    def test_another_commit_fails(self):
        p = kolacheck.parse_probe(fixture("probe-good.txt"))
        status, reason, _, problems = kolacheck.verdict(p, [], "0" * 64)
        self.assertEqual((status, reason), ("failed", "check"))
        self.assertTrue(any("booted commit" in x for x in problems))

    def test_a_finding_fails_a_running_system(self):
        p = kolacheck.parse_probe(fixture("probe-good.txt"))
        found = kolacheck.scan("[    3.2] Oops: 0000 [#1] PREEMPT SMP NOPTI\n", "journal")
        self.assertEqual(kolacheck.verdict(p, found, COMMIT)[:2], ("failed", "kernel-oops"))

    def test_a_cut_transcript_is_incomplete(self):
        text = fixture("probe-good.txt")
        p = kolacheck.parse_probe(text[:text.index("@@KOLA:journal@@")])
        self.assertFalse(p["complete"])
        self.assertIsNone(p["journalB64"])


if __name__ == "__main__":
    unittest.main()
