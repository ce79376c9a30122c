# SPDX-License-Identifier: BSD-2-Clause
"""Test certificates made with the openssl command-line tool.

    ca = certs.CA(tmpdir)                          # ca.key + ca.pem, self-signed
    a = ca.issue("a", ["a.test"])                  # a.pem + a.key, signed by ca
    lo = ca.issue("lo", ["localhost", "IP:127.0.0.1"])
    a.cert, a.key, a.serial                        # paths and the serial (int)

Keys are EC P-256 (fast to make and to handshake with). A subjectAltName
entry is a DNS name ("a.test", "*.wild.test") unless it starts with "IP:".
Making a CA and a few leaves takes a fraction of a second: do it once per
test class (setUpClass), in a directory the class removes.
"""
import os
import subprocess

DAYS = 30


class CertError(RuntimeError):
    """openssl failed; the message carries its command and output."""


class Leaf:
    """One issued certificate: cert and key (PEM file paths), serial (int),
    names (the subjectAltName entries as given)."""

    def __init__(self, cert, key, serial, names):
        self.cert, self.key, self.serial, self.names = cert, key, serial, list(names)

    def serial_hex(self):
        """The serial as Python's ssl getpeercert()["serialNumber"] spells it."""
        text = "%X" % self.serial
        return text if len(text) % 2 == 0 else "0" + text

    def __repr__(self):
        return "<Leaf %s serial %s>" % (self.names, self.serial_hex())


def openssl(*args, cwd=None):
    """Runs openssl with args; returns stdout; raises CertError on failure."""
    proc = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise CertError("openssl %s failed (%d):\n%s%s" % (" ".join(args), proc.returncode,
                                                          proc.stdout, proc.stderr))
    return proc.stdout


def ec_key(path):
    """A new EC P-256 private key (PEM) at path; returns path."""
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    os.chmod(path, 0o600)
    return path


def san_text(names):
    """subjectAltName value: "DNS:a.test,IP:127.0.0.1"."""
    out = []
    for n in names:
        out.append(n if n.startswith(("IP:", "DNS:")) else "DNS:" + n)
    return ",".join(out)


def random_serial():
    # positive, 63 bits, never 0: unique enough between two issues
    return int.from_bytes(os.urandom(8), "big") >> 1 | 1


class CA:
    """A certificate authority in directory: CA(dir).key, .cert (paths)."""

    def __init__(self, directory, name="Switchyard Test CA", stem="ca"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.key = ec_key(os.path.join(directory, stem + ".key"))
        self.cert = os.path.join(directory, stem + ".pem")
        ext = self._ext_file(stem, ["basicConstraints = critical, CA:TRUE",
                                    "keyUsage = critical, keyCertSign, cRLSign",
                                    "subjectKeyIdentifier = hash"])
        openssl("req", "-x509", "-new", "-key", self.key, "-subj", "/CN=" + name,
                "-days", str(DAYS), "-sha256", "-set_serial", str(random_serial()),
                "-config", ext, "-extensions", "ext", "-out", self.cert)

    def _ext_file(self, stem, lines):
        # a whole config file: "req" needs its section, "x509 -extfile" the ext one
        path = os.path.join(self.dir, stem + ".cnf")
        with open(path, "w") as f:
            f.write("[req]\ndistinguished_name = dn\n[dn]\n[ext]\n" + "\n".join(lines) + "\n")
        return path

    def issue(self, stem, names, serial=None, days=DAYS, directory=None):
        """A leaf for names (subjectAltName entries; the first is also the
        CN), signed by this CA: DIR/STEM.pem and DIR/STEM.key (directory
        defaults to the CA's). serial: an int, default random."""
        directory = directory or self.dir
        os.makedirs(directory, exist_ok=True)
        serial = random_serial() if serial is None else serial
        key = ec_key(os.path.join(directory, stem + ".key"))
        csr = os.path.join(directory, stem + ".csr")
        cert = os.path.join(directory, stem + ".pem")
        cn = names[0].split(":", 1)[1] if names[0].startswith(("IP:", "DNS:")) else names[0]
        openssl("req", "-new", "-key", key, "-subj", "/CN=" + cn, "-out", csr)
        ext = self._ext_file(stem, ["basicConstraints = critical, CA:FALSE",
                                    "keyUsage = critical, digitalSignature",
                                    "extendedKeyUsage = serverAuth",
                                    "subjectAltName = " + san_text(names),
                                    "subjectKeyIdentifier = hash",
                                    "authorityKeyIdentifier = keyid:always"])
        openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                "-set_serial", str(serial), "-days", str(days), "-sha256",
                "-extfile", ext, "-extensions", "ext", "-out", cert)
        os.unlink(csr)
        return Leaf(cert, key, serial, names)
