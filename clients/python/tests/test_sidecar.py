"""The Python client against the real secret-proxy and kv-emulator.

Every client call (get, batch_get, list, refresh, get_access_token, watch) runs
over the unix socket and over TCP, with a bearer token the sidecar checks.
"""

from __future__ import annotations

import datetime
import os
import queue
import secrets as pysecrets
import shutil
import signal
import sys
import tempfile
import threading
import unittest
from typing import Dict, List, Tuple, Union

from tests import harness

harness.require_runtime()

import secretproxy  # noqa: E402
from secretproxy import StatusCode  # noqa: E402

# Test values, not credentials. Every one is checked to be absent from reprs,
# error messages and logs.
SEED = {
    "sql-server-name": "py-test-server.internal",
    "sql-user": "py_test_orders_app",
    "sql-password": "py-test-password-1",
    "sql-database": "py_test_orders",
    "api-key": "py-test-api-key-1",
}
DECLARED = {**harness.DATABASE_SECRETS, "api-key": "api-key", "absent": "absent-in-vault"}
SQL_SCOPE = "https://database.windows.net/.default"
SQL_TOKEN = "py-test-entra-token-" + pysecrets.token_hex(8)  # what the emulator issues for SQL_SCOPE

BINARIES: harness.Binaries


def setUpModule() -> None:
    global BINARIES
    build_dir = tempfile.mkdtemp(prefix="secretproxy-py-bin-")
    unittest.addModuleCleanup(shutil.rmtree, build_dir, True)
    BINARIES = harness.build(build_dir)


class Consumer:
    """Iterates a Watch in a thread, so the test waits for each update with a deadline."""

    def __init__(self, watch: secretproxy.Watch) -> None:
        self.watch = watch
        self._q: "queue.Queue[Union[secretproxy.Update, BaseException]]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="watch-consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for update in self.watch:
                self._q.put(update)
            self._q.put(StopIteration())
        except BaseException as err:  # handed to the test thread
            self._q.put(err)

    def next(self, timeout: float = 30.0) -> Union[secretproxy.Update, BaseException]:
        try:
            return self._q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no watch update within {timeout}s") from None

    def update(self, timeout: float = 30.0) -> secretproxy.Update:
        got = self.next(timeout)
        if isinstance(got, BaseException):
            raise AssertionError(f"the watch ended with {got!r}, want an update")
        return got

    def stop(self) -> None:
        self.watch.close()
        self._thread.join(10)
        if self._thread.is_alive():
            raise AssertionError("the watch did not end within 10 s of close()")


class SidecarTest(unittest.TestCase):
    """A kv-emulator and one secret-proxy per test class, with a token file."""

    pod: harness.Pod
    sidecar: harness.Sidecar
    token: str
    token_file: str
    sidecar_kw: Dict[str, object] = {}
    queued_tokens: Dict[str, str] = {}  # resource -> the token the emulator issues first

    @classmethod
    def setUpClass(cls) -> None:
        cls.pod = harness.Pod(BINARIES, SEED)
        cls.addClassCleanup(cls.pod.stop)
        assert cls.pod.emulator is not None
        for resource, token in cls.queued_tokens.items():
            cls.pod.emulator.queue_token(resource, token)
        cls.token = "py-test-client-token-" + pysecrets.token_hex(8)
        # The sidecar's file and the client's are separate files, as in a pod.
        sidecar_token = cls.pod.write_file("sidecar-token", cls.token + "\n")
        cls.token_file = cls.pod.write_file("client-token", cls.token + "\n")
        cls.sidecar = cls.pod.sidecar(
            cls.__name__.lower(), secrets=DECLARED, optional=["absent"], token_file=sidecar_token, **cls.sidecar_kw
        )

    @property
    def emulator(self) -> harness.Emulator:
        assert self.pod.emulator is not None
        return self.pod.emulator

    def targets(self) -> Dict[str, str]:
        return {"unix": "unix://" + self.sidecar.config.unix, "tcp": self.sidecar.config.grpc}

    def client(self, target: str, **kw: object) -> secretproxy.Client:
        if "token" not in kw and "token_file" not in kw:
            kw["token_file"] = self.token_file
        c = secretproxy.Client(target, **kw)  # type: ignore[arg-type]
        self.addCleanup(c.close)
        return c

    def clients(self, **kw: object) -> List[Tuple[str, secretproxy.Client]]:
        """One client per transport."""
        return [(transport, self.client(target, **kw)) for transport, target in self.targets().items()]

    # Values are compared without ever being printed: a failure message names
    # the secret, never its value, so test output holds no secret either.
    def assert_value(self, got: str, want: str, what: str) -> None:
        self.assertTrue(got == want, f"{what}: wrong value (values are not printed)")

    def assert_no_value(self, text: str, *more: str) -> None:
        for value in [*SEED.values(), self.token, SQL_TOKEN, *more]:
            self.assertFalse(value in text, "a secret value appears in the text (not printed)")


class UnaryCallsTest(SidecarTest):
    """get, batch_get, list, refresh, get_access_token and their errors."""

    sidecar_kw = {"access_token_scopes": [SQL_SCOPE]}
    queued_tokens = {"https://database.windows.net": SQL_TOKEN}

    def test_get(self) -> None:
        for transport, c in self.clients():
            with self.subTest(transport=transport):
                s = c.get("db-password")
                self.assertEqual(s.name, "db-password")
                self.assert_value(s.value, SEED["sql-password"], "db-password")
                self.assertTrue(s.version, "no version")
                self.assertFalse(s.stale)
                self.assertIsNotNone(s.update_time)
                self.assertIsNotNone(s.refresh_time)
                self.assertIsNone(s.expire_time, "the seed sets no expiry")
                self.assertIsNone(s.not_before_time)
                self.assert_no_value(repr(s))

    def test_batch_get(self) -> None:
        names = ["db-server", "db-user", "db-password", "db-name", "db-user"]
        for transport, c in self.clients():
            with self.subTest(transport=transport):
                got = c.batch_get(names)
                self.assertEqual([s.name for s in got], names, "order of the request, a repeated name twice")
                for n, secret in zip(names, got):
                    self.assert_value(secret.value, SEED[harness.DATABASE_SECRETS[n]], n)
                self.assertEqual(got[1], got[4])
                self.assert_no_value(repr(got))

    def test_list(self) -> None:
        for transport, c in self.clients():
            with self.subTest(transport=transport):
                got = c.list()
                self.assertEqual(sorted(s.name for s in got), sorted(DECLARED))
                self.assertEqual([s.name for s in got if s.value], [], "list returns no values")
                versions = {s.name: s.version for s in got}
                self.assertEqual(versions["db-user"], c.get("db-user").version)

    def test_refresh(self) -> None:
        for transport, c in self.clients():
            with self.subTest(transport=transport):
                value = f"py-test-api-key-{transport}"
                old = c.get("api-key")
                version = self.emulator.set_secret("api-key", value)
                self.assertNotEqual(version, old.version)
                got = c.refresh("api-key")
                self.assertEqual(got.version, version, "refresh reads the vault now")
                self.assert_value(got.value, value, "api-key after refresh")
                again = c.get("api-key")
                self.assertEqual(again.version, version, "the cache holds the refreshed value")
                self.assert_value(again.value, value, "api-key from the cache")
                self.assert_no_value(repr(got), value)

    def test_get_access_token(self) -> None:
        for transport, c in self.clients():
            with self.subTest(transport=transport):
                tok = c.get_access_token(SQL_SCOPE)
                self.assertTrue(tok.token == SQL_TOKEN, "not the token the identity endpoint issued (not printed)")
                self.assertIsNotNone(tok.expire_time)
                assert tok.expire_time is not None
                self.assertGreater(
                    tok.expire_time,
                    datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1),
                    "a token is never served within 1 minute of its expiry",
                )
                self.assert_no_value(repr(tok) + str([tok]), SQL_TOKEN)
                with self.assertRaises(secretproxy.SecretProxyError) as cm:
                    c.get_access_token("https://management.azure.com/.default")
                self.assertEqual(cm.exception.code, StatusCode.PERMISSION_DENIED, cm.exception)
                self.assertIn("accessTokens.scopes", cm.exception.message)

    def test_errors_keep_status(self) -> None:
        cases: List[Tuple[str, object, StatusCode, str]] = [
            ("undeclared name", lambda c: c.get("not-declared"), StatusCode.PERMISSION_DENIED, "not-declared"),
            ("malformed name", lambda c: c.get("bad name!"), StatusCode.INVALID_ARGUMENT, "bad name!"),
            ("absent from the vault", lambda c: c.get("absent"), StatusCode.NOT_FOUND, "absent"),
            (
                "batch with an undeclared name",
                lambda c: c.batch_get(["db-user", "not-declared"]),
                StatusCode.PERMISSION_DENIED,
                "not-declared",
            ),
            ("refresh an undeclared name", lambda c: c.refresh("not-declared"), StatusCode.PERMISSION_DENIED, "not-declared"),
        ]
        for transport, c in self.clients():
            with self.subTest(transport=transport):
                for name, call, code, mentions in cases:
                    with self.subTest(case=name):
                        with self.assertRaises(secretproxy.SecretProxyError) as cm:
                            call(c)  # type: ignore[operator]
                        err = cm.exception
                        self.assertEqual(err.code, code, err)
                        self.assertIn(mentions, err.message, "the sidecar's message is kept")
                        self.assertIn(code.name, str(err))
                        self.assert_no_value(str(err) + repr(err))

    def test_bearer_token(self) -> None:
        for transport, target in self.targets().items():
            with self.subTest(transport=transport, token="none"):
                with self.assertRaises(secretproxy.SecretProxyError) as cm:
                    secretproxy.Client(target).get("db-user")
                self.assertEqual(cm.exception.code, StatusCode.UNAUTHENTICATED)
                self.assertIn("missing bearer token", cm.exception.message)
            with self.subTest(transport=transport, token="wrong"):
                with self.assertRaises(secretproxy.SecretProxyError) as cm:
                    self.client(target, token="wrong-token").get("db-user")
                self.assertEqual(cm.exception.code, StatusCode.UNAUTHENTICATED)
                self.assertIn("wrong bearer token", cm.exception.message)
                self.assert_no_value(str(cm.exception), "wrong-token")
            with self.subTest(transport=transport, token="literal"):
                self.assert_value(self.client(target, token=self.token).get("db-user").value, SEED["sql-user"], "db-user")
            with self.subTest(transport=transport, token="file re-read per call"):
                path = self.pod.write_file(f"rotating-token-{transport}", "an-old-token\n")
                c = self.client(target, token_file=path)
                with self.assertRaises(secretproxy.SecretProxyError) as cm:
                    c.get("db-user")
                self.assertEqual(cm.exception.code, StatusCode.UNAUTHENTICATED)
                self.pod.write_file(f"rotating-token-{transport}", self.token + "\n")
                self.assert_value(c.get("db-user").value, SEED["sql-user"], "db-user, the same client with the new token")
            with self.subTest(transport=transport, token="file missing"):
                missing = os.path.join(self.pod.dir, "no-such-token")
                with self.assertRaises(secretproxy.TokenFileError) as missing_cm:
                    self.client(target, token_file=missing).get("db-user")
                self.assertEqual(missing_cm.exception.code, StatusCode.UNAUTHENTICATED)
                self.assertIn(missing, missing_cm.exception.message)


class WatchTest(SidecarTest):
    """watch: a rotation, a sidecar restart, permanent errors and close()."""

    # The refresher reads the vault every second, so a rotation reaches the
    # watch quickly; the test waits for it with a 30 s deadline.
    sidecar_kw = {"interval": "1s", "min_interval": "100ms"}

    def start(self, names: List[str], **kw: object) -> Dict[str, Consumer]:
        consumers = {}
        for transport, target in self.targets().items():
            w = self.client(target, min_backoff=0.05, max_backoff=1.0, **kw).watch(names)
            con = Consumer(w)
            self.addCleanup(con.stop)
            consumers[transport] = con
        return consumers

    def test_rotation(self) -> None:
        consumers = self.start(["db-user", "db-password"])
        before = {}
        for transport, con in consumers.items():
            first = con.update()
            self.assertTrue(first.initial, transport)
            got = first.by_name()
            self.assertEqual(sorted(got), ["db-password", "db-user"], transport)
            self.assertEqual(got["db-user"].version, self.client(self.targets()[transport]).get("db-user").version)
            before[transport] = got["db-password"].version
        self.assertEqual(before["unix"], before["tcp"])

        version = self.emulator.set_secret("sql-password", "py-test-password-2")
        for transport, con in consumers.items():
            with self.subTest(transport=transport):
                up = con.update()
                self.assertFalse(up.initial)
                self.assertEqual([s.name for s in up.secrets], ["db-password"], "only what changed")
                self.assertEqual(up.secrets[0].version, version)
                self.assert_value(up.secrets[0].value, "py-test-password-2", "db-password")
                self.assert_no_value(repr(up), "py-test-password-2")

    def test_restart(self) -> None:
        consumers = self.start(["db-name", "db-server"])
        for con in consumers.values():
            self.assertTrue(con.update().initial)

        with self.assertLogs("secretproxy", "WARNING") as logs:
            self.assertEqual(self.sidecar.stop(), 0, "secret-proxy exits 0 on SIGTERM")
            # Changed while the sidecar is down: only a fresh snapshot shows it.
            version = self.emulator.set_secret("sql-database", "py_test_orders_2")
            self.sidecar.start()
            for transport, con in consumers.items():
                with self.subTest(transport=transport):
                    # A watch that reconnected while the old sidecar was still
                    # draining may get that sidecar's snapshot first; every
                    # message until the new sidecar's is a snapshot too.
                    for _ in range(10):
                        up = con.update()
                        self.assertTrue(up.initial, "a reconnect starts with a fresh snapshot")
                        got = up.by_name()
                        self.assertEqual(sorted(got), ["db-name", "db-server"])
                        if got["db-name"].version == version:
                            break
                    else:
                        self.fail("no snapshot with the version set while the sidecar was down")
                    self.assert_value(got["db-name"].value, "py_test_orders_2", "db-name")
                    self.assertGreaterEqual(con.watch.reconnects, 1)
        text = "\n".join(logs.output)
        self.assertIn("reconnecting", text)
        self.assertIn("UNAVAILABLE", text)
        self.assert_no_value(text, "py_test_orders_2")

        # And the watch goes on after the reconnect.
        version = self.emulator.set_secret("sql-server-name", "py-test-server-2.internal")
        for transport, con in consumers.items():
            with self.subTest(transport=transport, after="restart"):
                up = con.update()
                self.assertFalse(up.initial)
                self.assertEqual([(s.name, s.version) for s in up.secrets], [("db-server", version)])

    def test_permanent_errors_end_the_watch(self) -> None:
        cases: List[Tuple[str, List[str], Dict[str, object], StatusCode]] = [
            ("undeclared name", ["db-user", "not-declared"], {}, StatusCode.PERMISSION_DENIED),
            ("malformed name", ["bad name!"], {}, StatusCode.INVALID_ARGUMENT),
            ("wrong token", ["db-user"], {"token": "wrong-token"}, StatusCode.UNAUTHENTICATED),
            (
                "token file missing",
                ["db-user"],
                {"token_file": "/nonexistent/secret-proxy-token"},
                StatusCode.UNAUTHENTICATED,
            ),
        ]
        for transport, target in self.targets().items():
            for name, names, kw, code in cases:
                with self.subTest(transport=transport, case=name):
                    con = Consumer(self.client(target, **kw).watch(names))
                    self.addCleanup(con.stop)
                    got = con.next()
                    self.assertIsInstance(got, secretproxy.SecretProxyError)
                    assert isinstance(got, secretproxy.SecretProxyError)
                    self.assertEqual(got.code, code, got)
                    self.assertTrue(con.watch.closed)
                    with self.assertRaises(StopIteration, msg="nothing after a permanent error"):
                        next(con.watch)
                    self.assertEqual(con.watch.reconnects, 0, "no retry of a permanent error")

    def test_close_ends_a_blocked_next(self) -> None:
        for transport, con in self.start(["db-user"]).items():
            with self.subTest(transport=transport):
                self.assertTrue(con.update().initial)
                con.watch.close()  # the consumer thread is blocked in next()
                self.assertIsInstance(con.next(), StopIteration)

    def test_client_close_ends_its_watches(self) -> None:
        for transport, target in self.targets().items():
            with self.subTest(transport=transport):
                c = self.client(target)
                con = Consumer(c.watch(["db-user"]))
                self.addCleanup(con.stop)
                self.assertTrue(con.update().initial)
                c.close()
                self.assertIsInstance(con.next(), StopIteration)
                with self.assertRaises(ValueError):
                    c.watch(["db-user"])

    def test_example(self) -> None:
        """examples/database_credentials.py: versions, never values; --watch shows a rotation."""
        example = os.path.join(harness.REPO_ROOT, "clients", "python", "examples", "database_credentials.py")
        env = {**os.environ, "PYTHONPATH": os.path.join(harness.REPO_ROOT, "clients", "python")}
        for transport, target in self.targets().items():
            with self.subTest(transport=transport):
                versions = {s.name: s.version for s in self.client(target).list()}
                p = harness.Process(
                    "example",
                    [sys.executable, example, "--sidecar", target, "--token-file", self.token_file, "--watch"],
                    env=env,
                )
                self.addCleanup(p.stop)
                p.wait_for_line(lambda l: l.startswith("watching for new versions"), timeout=30)
                # The four lines come before "watching ...".
                printed = p.output().splitlines()
                for name in harness.DATABASE_SECRETS:
                    want = f"version {versions[name]}"
                    self.assertTrue(any(l.startswith(name + " ") and want in l for l in printed), f"{name}: {want}")
                version = self.emulator.set_secret("sql-user", f"py_test_orders_app_{transport}")
                p.wait_for_line(lambda l: l.startswith("new version: db-user ") and f"version {version}" in l)
                p.proc.send_signal(signal.SIGINT)
                self.assertEqual(p.proc.wait(10), 0, "Ctrl-C ends the example with status 0")
                p.stop()
                self.assert_no_value(p.output(), f"py_test_orders_app_{transport}")


if __name__ == "__main__":
    unittest.main()
