# SPDX-License-Identifier: BSD-2-Clause
"""Manual pages and shell completion (issue 10): man/switchyard.8,
man/switchyard-ctl.8 and man/switchyard.json.5 are clean under mandoc -T lint,
name every switchyard option, every switchyard-ctl command its --help lists
and every top-level key the configuration parser accepts; `make install
DESTDIR=...` puts them (and contrib/bash-completion/switchyard-ctl) where
man(1) and bash-completion look; the completion offers the commands.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, gateway, proxytest, root_path  # noqa: E402

PAGES = {"switchyard.8": "man8", "switchyard-ctl.8": "man8", "switchyard.json.5": "man5",
         "switchyard-logstat.1": "man1"}
COMPLETION = root_path("contrib", "bash-completion", "switchyard-ctl")


def page(name):
    with open(root_path("man", name)) as f:
        return f.read()


def rendered(name):
    """The page as text (mandoc -T ascii, overstrike removed), else its source."""
    if not shutil.which("mandoc"):
        return page(name)
    out = subprocess.run(["mandoc", "-T", "ascii", root_path("man", name)],
                         capture_output=True, text=True, check=True).stdout
    return re.sub(r".\x08", "", out)


def ctl_commands():
    """The command names `switchyard-ctl --help` lists under "commands:"."""
    out = subprocess.run([root_path("build", "switchyard-ctl"), "--help"],
                         capture_output=True, text=True).stdout
    cmds, inside = [], False
    for line in out.splitlines():
        if line.startswith("commands:"):
            inside = True
        elif inside and not line.startswith(" "):
            break
        elif inside:
            m = re.match(r"  (\w[\w-]*)", line)
            if m:
                cmds.append(m.group(1))
    return cmds


class Lint(unittest.TestCase):
    def test_mandoc_lint_clean(self):
        if not shutil.which("mandoc"):
            self.skipTest("mandoc is not installed (apt-get install mandoc)")
        paths = [root_path("man", p) for p in PAGES]
        # Warnings and errors: none at all.
        proc = subprocess.run(["mandoc", "-T", "lint", "-W", "warning"] + paths,
                              capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(proc.stdout, "")
        # Style: only the cross references between these pages, which mandoc
        # looks up in the installed manual database, not among its arguments.
        proc = subprocess.run(["mandoc", "-T", "lint"] + paths, capture_output=True, text=True)
        ours = "|".join(re.escape(p.rsplit(".", 1)[0] + " " + p.rsplit(".", 1)[1]) for p in PAGES)
        left = [l for l in proc.stdout.splitlines()
                if not re.search(r"referenced manual not found: Xr (%s)\b" % ours, l)]
        self.assertEqual(left, [])


class Content(unittest.TestCase):
    def test_every_ctl_command_in_its_page(self):
        cmds = ctl_commands()
        self.assertGreaterEqual(len(cmds), 9, cmds)   # status ... reload
        text = page("switchyard-ctl.8")
        for cmd in cmds:
            self.assertRegex(text, r"(?m)^\.It Cm %s\b" % re.escape(cmd))

    def test_every_ctl_option_in_its_page(self):
        text = rendered("switchyard-ctl.8")
        for opt in ("--admin", "--token-file", "--json", "--help", "--version", "--force",
                    "SWITCHYARD_ADMIN", "SWITCHYARD_TOKEN_FILE"):
            self.assertIn(opt, text)

    def test_every_logstat_option_and_report_in_its_page(self):
        out = subprocess.run([root_path("build", "switchyard-logstat"), "--help"],
                             capture_output=True, text=True).stdout
        longs = sorted(set(re.findall(r"--([a-z0-9-]+)", out)))
        self.assertIn("path-prefix", longs)
        src = page("switchyard-logstat.1")
        for o in longs:
            self.assertRegex(src, r"Fl -%s\b" % re.escape(o))
        reports = re.search(r"sections: ([a-z_,\s]+)\(", out).group(1)
        for name in re.findall(r"[a-z_]+", reports):
            self.assertRegex(src, r"(?m)^\.It Cm %s$" % name)
        for section in ("OPTIONS", "EXIT STATUS", "SEE ALSO"):
            self.assertRegex(src, r"(?m)^\.Sh %s$" % section)

    def test_every_switchyard_option_and_signal_in_its_page(self):
        out = subprocess.run([root_path("build", "switchyard"), "-h"],
                             capture_output=True, text=True).stdout
        opts = sorted(set(re.findall(r"(?<![\w-])-([a-zA-Z])\b", out)))
        self.assertIn("s", opts)
        src = page("switchyard.8")
        for o in opts:
            self.assertRegex(src, r"(?m)^\.It Fl %s\b" % o)
        for word in ("reload", "reopen", "stop", "SIGHUP", "SIGUSR1", "SIGTERM", "SIGINT"):
            self.assertIn(word, src)
        for section in ("FILES", "SIGNALS", "EXIT STATUS", "SEE ALSO"):
            self.assertRegex(src, r"(?m)^\.Sh %s$" % section)

    def test_every_top_level_key_in_config_page(self):
        # the keys the gateway accepts at the top level: its parser's own list
        # (SPEC.md lives outside the repository, so a clean clone cannot read it)
        with open(root_path("src", "core", "conf_parse.c")) as f:
            parser = f.read()
        block = re.search(r"top_keys\[\] = \{(.*?)NULL", parser, re.S)
        self.assertIsNotNone(block, "no top_keys in src/core/conf_parse.c")
        keys = re.findall(r'"([a-z_]+)"', block.group(1))
        self.assertIn("state_file", keys)
        src = page("switchyard.json.5")
        for key in keys:
            self.assertRegex(src, r"(?m)^\.It Ic %s$" % re.escape(key))

    def test_sections_of_every_page(self):
        for name in PAGES:
            src = page(name)
            for section in ("NAME", "DESCRIPTION" if name.endswith(".5") else "SYNOPSIS",
                            "FILES", "SEE ALSO"):
                self.assertRegex(src, r"(?m)^\.Sh %s$" % section, name)


class Install(unittest.TestCase):
    def test_make_install_destdir(self):
        dest = tempfile.mkdtemp(prefix="sy-install-")
        self.addCleanup(shutil.rmtree, dest, True)
        proc = subprocess.run(["make", "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                              cwd=root_path(), capture_output=True, text=True, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        for name, section in PAGES.items():
            path = os.path.join(dest, "usr", "share", "man", section, name)
            self.assertTrue(os.path.isfile(path), path)
            with open(path) as f:
                self.assertEqual(f.read(), page(name))
        comp = os.path.join(dest, "usr", "share", "bash-completion", "completions",
                            "switchyard-ctl")
        self.assertTrue(os.path.isfile(comp), comp)
        self.assertTrue(os.access(os.path.join(dest, "usr", "bin", "switchyard"), os.X_OK))


class Completion(unittest.TestCase):
    def complete(self, line):
        """What the completion offers for the words of line (the last one being typed)."""
        words = line.split(" ")
        script = ('source %s\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n'
                  '_switchyard_ctl\nprintf "%%s\\n" "${COMPREPLY[@]}"\n'
                  % (COMPLETION, " ".join("'%s'" % w for w in words), len(words) - 1))
        env = dict(os.environ, PATH=root_path("build") + os.pathsep + os.environ["PATH"],
                   SWITCHYARD_ADMIN="http://127.0.0.1:1")
        proc = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True,
                              env=env, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return [w for w in proc.stdout.split("\n") if w]

    def test_commands_and_arguments(self):
        if not shutil.which("bash"):
            self.skipTest("no bash")
        self.assertEqual(sorted(self.complete("switchyard-ctl ")), sorted(ctl_commands()))
        self.assertEqual(self.complete("switchyard-ctl ro"), ["rollout"])
        self.assertIn("--token-file", self.complete("switchyard-ctl --t"))
        self.assertEqual(self.complete("switchyard-ctl switch app "), ["blue", "green"])
        self.assertEqual(sorted(self.complete("switchyard-ctl rollout app ")),
                         sorted(["start", "pause", "resume", "abort", "promote", "status"]))
        self.assertIn("--force", self.complete("switchyard-ctl switch app blue --"))
        # No gateway answers: no service names, and no error either.
        self.assertEqual(self.complete("switchyard-ctl switch "), [])

    def test_names_from_the_running_gateway(self):
        if not shutil.which("bash"):
            self.skipTest("no bash")
        with backends.Testd([0]) as td:
            with gateway.Gateway(proxytest.config([td.addr(0)])) as gw:
                gw.wait_admin()
                admin = gw.admin_url("").rstrip("/")
                self.assertEqual(self.complete("switchyard-ctl --admin %s switch " % admin),
                                 ["svc"])
                self.assertEqual(self.complete("switchyard-ctl --admin %s drain " % admin), ["p"])


if __name__ == "__main__":
    unittest.main()
