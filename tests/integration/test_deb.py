# SPDX-License-Identifier: BSD-2-Clause
"""The Debian package (issue 10). `make deb` writes
build/switchyard_VERSION_ARCH.deb; its fields and files are checked (Depends
names the package of every shared library the programs load, per ldd; every
program and man page of the tree is in it; the unit, logrotate file and
example configuration are the tree's). Then `dpkg -i` installs it, the
INSTALLED /usr/bin/switchyard is started by hand with the installed
/etc/switchyard/switchyard.json (listener, admin and the pools' instances
moved to free ports and build/testd by SWITCHYARD__ variables; logs and
state where the file puts them, in /var/log/switchyard and
/var/lib/switchyard), answers GET /health and proxies to the blue slot, and
`dpkg --purge` removes every file it installed, /etc/switchyard and what the
gateway wrote.

It needs root and dpkg, and skips without them. It skips rather than touch a
machine where a switchyard package or a source install's files
(/etc/switchyard, the unit in /etc/systemd/system, /var/lib/switchyard,
/var/log/switchyard) are already there: the purge would delete them. The
package is purged even when a test fails.
"""
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import backends, httpc, ports, root_path  # noqa: E402

H = "127.0.0.1"
WAIT_S = 10.0
CONFIG = "/etc/switchyard/switchyard.json"
RUN_DIRS = ("/var/lib/switchyard", "/var/log/switchyard")
# A source install's files that the package would take over or the purge
# delete: their presence skips the test.
FOREIGN = ("/etc/switchyard", "/etc/systemd/system/switchyard.service") + RUN_DIRS
# Two runs of this file at once (two checkouts' test suites) would fight
# over dpkg's lock and the one package name: the second waits here.
LOCK = "/tmp/switchyard-test-deb.lock"


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120),
                          **kw)


def package_status():
    """dpkg's status line of the switchyard package, "" when it is not
    installed at all (unknown, or purged: "... not-installed")."""
    proc = run(["dpkg-query", "-W", "-f=${Status}", "switchyard"])
    status = proc.stdout.strip() if proc.returncode == 0 else ""
    return "" if status.endswith("not-installed") else status


def make_variable(name):
    with open(root_path("Makefile")) as f:
        for line in f:
            m = re.match(r"%s\s*=\s*(\S*)" % name, line)
            if m:
                return m.group(1)
    raise AssertionError("no %s in Makefile" % name)


def tree_programs():
    """The programs `make` builds: the gateway and each src/tools/NAME/."""
    tools = {os.path.basename(os.path.dirname(p))
             for p in glob.glob(root_path("src", "tools", "*", "*.c"))}
    return ["switchyard"] + sorted(tools)


def tree_man_pages():
    """{installed path: source} for every page in man/."""
    pages = {}
    for src in glob.glob(root_path("man", "*.[1-9]")):
        name = os.path.basename(src)
        pages["/usr/share/man/man%s/%s.gz" % (name[-1], name)] = src
    return pages


def is_elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def library_packages(binary):
    """{library path: owning package} of every shared library ldd resolves."""
    out = run(["ldd", binary]).stdout
    missing = [line for line in out.splitlines() if "not found" in line]
    if missing:
        raise AssertionError("%s: %s" % (binary, missing))
    owners = {}
    for m in re.finditer(r"=> (/\S+)", out):
        lib = m.group(1)
        for candidate in (lib, os.path.realpath(lib), "/usr" + lib):
            proc = run(["dpkg-query", "-S", candidate])
            if proc.returncode == 0:
                owners[lib] = proc.stdout.split(":")[0].strip()
                break
        else:
            raise AssertionError("no package owns %s (loaded by %s)" % (lib, binary))
    return owners


class DebCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("dpkg") or not shutil.which("dpkg-deb"):
            raise unittest.SkipTest("dpkg is not installed: not a Debian system")
        if os.geteuid() != 0:
            raise unittest.SkipTest("dpkg -i needs root: run as root to test the package")
        cls.lock = open(LOCK, "w")
        cls.addClassCleanup(cls.lock.close)
        deadline = time.monotonic() + 240
        while True:
            try:
                fcntl.flock(cls.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise unittest.SkipTest("another run of test_deb holds %s" % LOCK)
                time.sleep(0.5)
        status = package_status()
        if status:
            raise unittest.SkipTest("a switchyard package is already on this machine (%s): "
                                    "not replacing or purging it" % status)
        for path in FOREIGN + tuple(glob.glob("/etc/systemd/system/*/switchyard.service")):
            if os.path.lexists(path):
                raise unittest.SkipTest("%s already exists (a source install?): the package "
                                        "would take it over or its purge delete it" % path)

        with open(root_path("Makefile")) as f:
            sanitized = any(l.startswith("CFLAGS") and "-fsanitize=" in l for l in f)
        if sanitized:
            # build-deb.sh refuses: a package must never ship sanitizer builds
            raise unittest.SkipTest("this tree is configured with --enable-sanitizers: "
                                    "packages are built from a plain ./configure")
        proc = run(["make", "--no-print-directory", "deb"], cwd=root_path(), timeout=240)
        if proc.returncode != 0:
            raise AssertionError("make deb failed:\n%s%s" % (proc.stdout, proc.stderr))
        cls.version = make_variable("VERSION")
        cls.arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        cls.deb = root_path("build", "switchyard_%s_%s.deb" % (cls.version, cls.arch))
        if not os.path.isfile(cls.deb):
            raise AssertionError("make deb wrote no %s:\n%s" % (cls.deb, proc.stdout))
        cls.unpacked = tempfile.mkdtemp(prefix="sy-deb-")
        cls.addClassCleanup(shutil.rmtree, cls.unpacked, True)
        subprocess.run(["dpkg-deb", "-R", cls.deb, cls.unpacked], check=True, timeout=60)

    def field(self, name):
        return run(["dpkg-deb", "--field", self.deb, name]).stdout.strip()

    def packaged(self, path):
        return os.path.join(self.unpacked, path.lstrip("/"))

    # --- the .deb itself --------------------------------------------------

    def test_control_fields(self):
        self.assertEqual(self.field("Package"), "switchyard")
        self.assertEqual(self.field("Version"), self.version)
        self.assertEqual(self.field("Architecture"), self.arch)
        self.assertRegex(self.field("Maintainer"), r"^[^<>]+ <[^<>@\s]+@[^<>\s]+>$")
        self.assertGreater(int(self.field("Installed-Size")), 0)
        with open(self.packaged("DEBIAN/conffiles")) as f:
            self.assertEqual(sorted(f.read().split()),
                             ["/etc/logrotate.d/switchyard", "/etc/switchyard/switchyard.json"])

    def test_depends_covers_every_loaded_library(self):
        depends = {re.split(r"[\s(:]", alt.strip())[0]
                   for dep in self.field("Depends").split(",") for alt in dep.split("|")}
        bindir = self.packaged("/usr/bin")
        programs = [os.path.join(bindir, p) for p in sorted(os.listdir(bindir))]
        for binary in (p for p in programs if is_elf(p)):
            for lib, package in library_packages(binary).items():
                with self.subTest(binary=os.path.basename(binary), library=lib):
                    self.assertIn(package, depends)

    def test_files(self):
        for name in tree_programs():
            path = self.packaged("/usr/bin/" + name)
            self.assertTrue(os.access(path, os.X_OK), "no program /usr/bin/" + name)
        for installed in tree_man_pages():
            self.assertTrue(os.path.isfile(self.packaged(installed)), "no page " + installed)
        for installed, source in (
                ("/lib/systemd/system/switchyard.service", "contrib/systemd/switchyard.service"),
                ("/etc/logrotate.d/switchyard", "contrib/logrotate/switchyard"),
                ("/etc/switchyard/switchyard.json", "packaging/deb/switchyard.json"),
                ("/usr/share/bash-completion/completions/switchyard-ctl",
                 "contrib/bash-completion/switchyard-ctl")):
            with open(self.packaged(installed), "rb") as a, open(root_path(source), "rb") as b:
                self.assertEqual(a.read(), b.read(), "%s is not %s" % (installed, source))
        # make install's PREFIX/etc copy of conf/ must not end up in /usr/etc.
        self.assertFalse(os.path.exists(self.packaged("/usr/etc")))
        with open(self.packaged("/usr/share/doc/switchyard/copyright")) as f:
            copyright_text = " ".join(f.read().split())
        with open(root_path("LICENSE")) as f:
            license_text = f.read()
        self.assertIn("License: BSD-2-Clause", copyright_text)
        body = license_text[license_text.index("Redistribution"):]
        self.assertIn(" ".join(body.split()), copyright_text.replace(" . ", " "))
        self.assertTrue(os.path.isfile(self.packaged("/usr/share/doc/switchyard/changelog.gz")))

    # --- installed, run, purged -------------------------------------------

    def purge(self):
        if package_status():
            run(["dpkg", "--purge", "switchyard"])
        for d in RUN_DIRS:
            shutil.rmtree(d, ignore_errors=True)

    def start_installed(self, tmp, td):
        """/usr/bin/switchyard -c /etc/switchyard/switchyard.json as the
        unit starts it, its listener and admin on free ports, each pool on
        one instance of td instead of the example's 127.0.0.1:9001..."""
        self.port, self.admin_port = ports.free_port(), ports.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD")}
        env.update({
            "SWITCHYARD__LISTEN": json.dumps([{"addr": "%s:%d" % (H, self.port)}]),
            "SWITCHYARD__ADMIN__LISTEN": "%s:%d" % (H, self.admin_port),
            "SWITCHYARD__WORKERS": "1",
            "SWITCHYARD__POOLS__APP-BLUE__INSTANCES": json.dumps([{"addr": td.addr(0)}]),
            "SWITCHYARD__POOLS__APP-GREEN__INSTANCES": json.dumps([{"addr": td.addr(1)}]),
        })
        # What StateDirectory= and LogsDirectory= make for the unit.
        for d in RUN_DIRS:
            os.makedirs(d)
        stderr = open(os.path.join(tmp, "stderr.log"), "w+")
        self.addCleanup(stderr.close)
        proc = subprocess.Popen(["/usr/bin/switchyard", "-c", CONFIG,
                                 "-p", os.path.join(tmp, "switchyard.pid")],
                                cwd=tmp, env=env, stdout=stderr, stderr=stderr)

        def kill():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.addCleanup(kill)
        try:
            ports.wait_port(H, self.admin_port, WAIT_S, proc)
            ports.wait_port(H, self.port, WAIT_S, proc)
        except (TimeoutError, RuntimeError) as e:
            stderr.seek(0)
            raise AssertionError("%s\n--- stderr ---\n%s" % (e, stderr.read()))
        return proc

    def test_install_run_purge(self):
        self.addCleanup(self.purge)
        proc = run(["dpkg", "-i", self.deb], timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(package_status(), "install ok installed")
        installed = run(["dpkg", "-L", "switchyard"]).stdout.split()
        # Its files (dpkg -L lists directories too, /lib among them, a link).
        files = [p for p in installed if not os.path.isdir(p)]
        self.assertIn(CONFIG, files)

        # The programs, their libraries and pages where the system looks.
        out = run(["/usr/bin/switchyard", "-V"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.splitlines()[0], "switchyard " + self.version)
        for name in tree_programs():
            self.assertTrue(os.access("/usr/bin/" + name, os.X_OK), name)
            library_packages("/usr/bin/" + name)       # no "not found"
        for page in tree_man_pages():
            self.assertTrue(os.path.isfile(page), page)
            self.assertIn(page, installed)
        if shutil.which("man"):
            out = run(["man", "-w", "8", "switchyard"])
            self.assertEqual(out.stdout.strip(), "/usr/share/man/man8/switchyard.8.gz")
        self.assertTrue(os.path.isfile("/lib/systemd/system/switchyard.service"))
        # Installed, not enabled: nothing starts by surprise at the next boot.
        self.assertEqual(glob.glob("/etc/systemd/system/*/switchyard.service"), [])
        out = run(["/usr/bin/switchyard", "-t", "-c", CONFIG])
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

        # Started by hand with the packaged configuration.
        tmp = tempfile.mkdtemp(prefix="sy-deb-run-")
        self.addCleanup(shutil.rmtree, tmp, True)
        td = backends.Testd([(0, "blue"), (0, "green")], threads=1).start()
        self.addCleanup(td.stop)
        gw = self.start_installed(tmp, td)
        status, _, body = httpc.get("http://%s:%d/health" % (H, self.admin_port))
        self.assertEqual((status, json.loads(body)), (200, {"status": "ok"}))
        # The example's service proxies to its active slot, blue.
        status, _, body = httpc.get("http://%s:%d/" % (H, self.port))
        self.assertEqual((status, body), (200, b"blue\n"))
        gw.send_signal(signal.SIGTERM)
        self.assertEqual(gw.wait(30), 0)
        self.assertTrue(os.path.isfile("/var/log/switchyard/error.log"),
                        os.listdir("/var/log/switchyard"))

        proc = run(["dpkg", "--purge", "switchyard"], timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(package_status(), "")
        self.assertEqual([p for p in files if os.path.lexists(p)], [])
        for d in ("/etc/switchyard", "/usr/share/doc/switchyard") + RUN_DIRS:
            self.assertFalse(os.path.lexists(d), d)
        self.assertEqual(glob.glob("/etc/systemd/system/**/switchyard.service", recursive=True),
                         [])
        self.assertEqual(glob.glob("/var/lib/systemd/deb-systemd-helper-*/**/switchyard*",
                                   recursive=True), [])


if __name__ == "__main__":
    unittest.main()
