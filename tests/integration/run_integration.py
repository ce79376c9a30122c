# SPDX-License-Identifier: BSD-2-Clause
"""Runs one integration test file for tests/run and records each test.

    python3 tests/integration/run_integration.py --results FILE test_x.py

The tests run with unittest's verbose text output on stderr, as usual; FILE
gets one JSON line {"event": "start", "test": ID} when a test starts and one
{"event": "end", "test": ID, "status": passed|failed|skipped, "detail": ...}
when it ends, flushed at once, so that tests/run can name a test that hung or
took its process down. Errors outside a test (import, setUpClass) are
recorded as failed pseudo-tests. Exit status 0 whenever the file ran.
"""
import argparse
import importlib.util
import json
import os
import sys
import traceback
import unittest


class Recorder:
    """Appends one JSON line per event to the results file."""

    def __init__(self, path):
        self.out = open(path, "a", encoding="utf-8")

    def write(self, **record):
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()


class RecordingResult(unittest.TextTestResult):
    """A verbose text result that also records each test's outcome.

    A test's status is settled in stopTest because a test with failing
    subtests gets no addFailure of its own, only addSubTest calls."""

    recorder = None

    def startTest(self, test):
        super().startTest(test)
        self._status, self._details = "passed", []
        self.recorder.write(event="start", test=test.id())

    def stopTest(self, test):
        super().stopTest(test)
        self.recorder.write(event="end", test=test.id(), status=self._status,
                            detail="\n".join(self._details))

    def _failed(self, test, err):
        text = self._exc_info_to_string(err, test)
        if isinstance(test, unittest.TestCase):
            self._status = "failed"
            self._details.append(text)
        else:
            # setUpClass, setUpModule and friends: no startTest came first.
            self.recorder.write(event="end", test=str(test), status="failed", detail=text)

    def addError(self, test, err):
        super().addError(test, err)
        self._failed(test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._failed(test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._status = "failed"
            self._details.append("%s\n%s" % (subtest, self._exc_info_to_string(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if isinstance(test, unittest.TestCase):
            self._status = "skipped"
        else:
            self.recorder.write(event="end", test=str(test), status="skipped", detail=reason)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._status = "failed"
        self._details.append("unexpected success of a test marked expectedFailure")


def load(path):
    """The test file imported as a module named after it."""
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", required=True, help="JSON-lines file to append to")
    p.add_argument("file", help="a test_*.py file")
    args = p.parse_args()
    recorder = Recorder(args.results)
    RecordingResult.recorder = recorder
    try:
        suite = unittest.defaultTestLoader.loadTestsFromModule(load(args.file))
    except Exception:
        traceback.print_exc()
        recorder.write(event="end", test="%s (import)" % os.path.basename(args.file),
                       status="failed", detail=traceback.format_exc())
        return 0
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2,
                                     resultclass=RecordingResult)
    runner.run(suite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
