"""The client's own logic, without the sidecar: argument checks, reprs, the
watch's back-off and reconnect rules (over scripted streams), and a fake
SecretService on a unix socket for what the real sidecar never answers
(UNIMPLEMENTED) or to see exactly what the client sends."""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import tempfile
import threading
import unittest
from concurrent import futures
from typing import Any, Callable, Iterator, List, Optional, Sequence, Union

from tests import harness

harness.require_runtime()

import grpc  # noqa: E402
from google.protobuf import timestamp_pb2  # type: ignore[import]  # noqa: E402

import secretproxy  # noqa: E402
from secretproxy import StatusCode  # noqa: E402
from secretproxy._watch import Watch, backoff_wait  # noqa: E402
from secretproxy.v1 import secret_service_pb2 as pb  # noqa: E402
from secretproxy.v1 import secret_service_pb2_grpc as pb_grpc  # noqa: E402


class TargetTest(unittest.TestCase):
    def test_targets(self) -> None:
        good = ["unix:///run/secret-proxy/grpc.sock", "127.0.0.1:50051", "localhost:50051", "[::1]:50051"]
        bad = {
            "": "empty sidecar address",
            "unix://run/grpc.sock": "absolute path",
            "unix:relative.sock": "want host:port",
            "http://127.0.0.1:50051": "only unix:// or host:port",
            "127.0.0.1": "want host:port",
            "127.0.0.1:port": "want host:port",
            "127.0.0.1:50051/path": "want host:port",
        }
        for target in good:
            with self.subTest(target=target):
                secretproxy.Client(target).close()
        for target, msg in bad.items():
            with self.subTest(target=target):
                with self.assertRaises(ValueError) as cm:
                    secretproxy.Client(target)
                self.assertIn(msg, str(cm.exception))

    def test_options(self) -> None:
        cases = {
            "token and token_file": dict(token="a", token_file="/f"),
            "empty token": dict(token=" "),
            "back-off bounds": dict(min_backoff=2.0, max_backoff=1.0),
            "zero back-off": dict(min_backoff=0.0),
            "timeout": dict(timeout=0),
        }
        for name, kw in cases.items():
            with self.subTest(name):
                with self.assertRaises(ValueError):
                    secretproxy.Client("127.0.0.1:50051", **kw)  # type: ignore[arg-type]

    def test_names_must_be_a_list(self) -> None:
        with secretproxy.Client("127.0.0.1:1") as c:
            with self.assertRaises(TypeError):
                c.batch_get("db-user")
            with self.assertRaises(TypeError):
                c.watch("db-user")


class ReprTest(unittest.TestCase):
    def test_values_are_not_shown(self) -> None:
        value, token = "repr-test-value-1", "repr-test-token-1"
        s = secretproxy.Secret(name="db-password", value=value, version="v1", tags={"owner": "orders"})
        tok = secretproxy.AccessToken(token=token, expire_time=None)
        up = secretproxy.Update(initial=True, secrets=(s,))
        for what, text in {
            "repr(Secret)": repr(s),
            "str(Secret)": str(s),
            "repr([Secret])": repr([s]),
            "repr(Update)": repr(up),
            "repr(AccessToken)": repr(tok),
            "str(AccessToken)": str(tok),
        }.items():
            with self.subTest(what):
                self.assertFalse(value in text or token in text, f"{what} shows a value")
        self.assertIn("db-password", repr(s))
        self.assertIn("v1", repr(s))

    def test_from_proto(self) -> None:
        ts = timestamp_pb2.Timestamp(seconds=1_800_000_000)
        m = pb.Secret(name="n", value="v", version="1", content_type="text/plain", tags={"a": "b"}, update_time=ts, stale=True)
        s = secretproxy.Secret.from_proto(m)
        self.assertEqual(s.update_time, datetime.datetime.fromtimestamp(1_800_000_000, datetime.timezone.utc))
        self.assertIsNone(s.expire_time, "an unset timestamp is None, not 1970")
        self.assertEqual((s.content_type, dict(s.tags), s.stale), ("text/plain", {"a": "b"}, True))


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class FakeStream:
    """One scripted WatchSecrets call: its messages, then how it ends."""

    def __init__(self, msgs: Sequence[List[str]], end: Optional[grpc.StatusCode]) -> None:
        self._msgs = [pb.WatchSecretsResponse(secrets=[pb.Secret(name=n, version="1") for n in names]) for names in msgs]
        self._end = end
        self.cancelled = False

    def __iter__(self) -> "FakeStream":
        return self

    def __next__(self) -> pb.WatchSecretsResponse:
        if self._msgs:
            return self._msgs.pop(0)
        if self._end is None:
            raise StopIteration
        raise FakeRpcError(self._end, f"scripted {self._end.name}")

    def cancel(self) -> None:
        self.cancelled = True


class WatchRulesTest(unittest.TestCase):
    """The reconnect rules, over scripted streams (no network)."""

    def watch(self, streams: List[Any], logger: logging.Logger, rand: Callable[[], float] = lambda: 1.0) -> Watch:
        def open_stream() -> Any:
            s = streams.pop(0)
            if isinstance(s, Exception):
                raise s
            return s

        # rand 1.0: every wait is the whole delay, so the sequence is exact.
        return Watch(open_stream, min_backoff=0.001, max_backoff=0.004, logger=logger, rand=rand)

    def test_backoff_wait_bounds(self) -> None:
        self.assertEqual(backoff_wait(2.0, lambda: 0.0), 1.0)
        self.assertEqual(backoff_wait(2.0, lambda: 1.0), 2.0)
        self.assertEqual(backoff_wait(2.0, lambda: 0.5), 1.5)

    def test_reconnects_with_backoff_and_fresh_snapshots(self) -> None:
        U = StatusCode.UNAVAILABLE
        streams: List[Any] = [
            FakeStream([], U),
            FakeStream([], U),
            FakeStream([], U),
            FakeStream([], U),
            FakeStream([["a", "b"], ["a"]], U),  # a snapshot and a change, then a break
            FakeStream([], StatusCode.INTERNAL),
            FakeStream([["a", "b"]], None),  # a snapshot, then the server ends the stream
            FakeStream([["a", "b"]], StatusCode.PERMISSION_DENIED),
        ]
        logger = logging.getLogger("test.watch.rules")
        w = self.watch(streams, logger)
        with self.assertLogs(logger, "WARNING") as logs:
            got = [(u.initial, [s.name for s in u.secrets]) for u in self.take(w, 4)]
        self.assertEqual(got, [(True, ["a", "b"]), (False, ["a"]), (True, ["a", "b"]), (True, ["a", "b"])])
        with self.assertRaises(secretproxy.SecretProxyError) as cm:
            next(w)
        self.assertEqual(cm.exception.code, StatusCode.PERMISSION_DENIED)
        self.assertTrue(w.closed)
        with self.assertRaises(StopIteration):
            next(w)
        waits = [r.args[2] for r in logs.records]  # type: ignore[index]
        # Doubling from 1 ms, capped at 4 ms; back to 1 ms after each message.
        self.assertEqual(waits, [0.001, 0.002, 0.004, 0.004, 0.001, 0.002, 0.001])
        self.assertEqual(w.reconnects, 7)

    def test_permanent_codes(self) -> None:
        for code in [StatusCode.INVALID_ARGUMENT, StatusCode.PERMISSION_DENIED, StatusCode.UNAUTHENTICATED, StatusCode.UNIMPLEMENTED]:
            with self.subTest(code=code.name):
                w = self.watch([FakeStream([], code)], logging.getLogger("test.watch.permanent"))
                with self.assertRaises(secretproxy.SecretProxyError) as cm:
                    next(w)
                self.assertEqual(cm.exception.code, code)
                self.assertEqual(cm.exception.message, f"scripted {code.name}")
                self.assertEqual(w.reconnects, 0)

    def test_token_file_error_is_permanent(self) -> None:
        w = self.watch([secretproxy.TokenFileError("watch secrets", "no file")], logging.getLogger("test.watch.token"))
        with self.assertRaises(secretproxy.TokenFileError):
            next(w)
        self.assertTrue(w.closed)

    def test_close_cancels_the_stream(self) -> None:
        s = FakeStream([["a"]], StatusCode.UNAVAILABLE)
        w = self.watch([s], logging.getLogger("test.watch.close"))
        self.assertTrue(next(w).initial)
        w.close()
        self.assertTrue(s.cancelled)
        with self.assertRaises(StopIteration):
            next(w)

    @staticmethod
    def take(w: Watch, n: int) -> Iterator[secretproxy.Update]:
        for _ in range(n):
            yield next(w)


class FakeSidecar(pb_grpc.SecretServiceServicer):
    """Answers GetAccessToken and records the authorization metadata of each
    call; every other method is the generated UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.auth: List[str] = []
        self.scopes: List[str] = []
        self._lock = threading.Lock()

    def GetAccessToken(self, request: pb.GetAccessTokenRequest, context: grpc.ServicerContext) -> pb.GetAccessTokenResponse:
        with self._lock:
            self.auth.append(dict(context.invocation_metadata()).get("authorization", ""))
            self.scopes.append(request.scope)
        if request.scope != "https://database.windows.net/.default":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"scope {request.scope!r} is not in accessTokens.scopes")
        return pb.GetAccessTokenResponse(
            token="fake-entra-token", expire_time=timestamp_pb2.Timestamp(seconds=1_900_000_000)
        )


class FakeSidecarTest(unittest.TestCase):
    def setUp(self) -> None:
        d = tempfile.mkdtemp(prefix="secretproxy-py-fake-")
        self.addCleanup(shutil.rmtree, d, True)
        self.sock = os.path.join(d, "grpc.sock")
        self.fake = FakeSidecar()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_SecretServiceServicer_to_server(self.fake, self.server)
        self.server.add_insecure_port("unix://" + self.sock)
        self.server.start()
        self.addCleanup(self.server.stop, None)
        self.token_file = os.path.join(d, "token")

    def write_token(self, token: str) -> None:
        with open(self.token_file, "w", encoding="utf-8") as f:
            f.write(token + "\n")

    def test_get_access_token(self) -> None:
        self.write_token("token-one")
        with secretproxy.Client("unix://" + self.sock, token_file=self.token_file, timeout=10) as c:
            tok = c.get_access_token("https://database.windows.net/.default")
            self.write_token("token-two")
            with self.assertRaises(secretproxy.SecretProxyError) as cm:
                c.get_access_token("https://management.azure.com/.default")
        self.assertTrue(tok.token == "fake-entra-token", "wrong token (not printed)")
        self.assertEqual(tok.expire_time, datetime.datetime.fromtimestamp(1_900_000_000, datetime.timezone.utc))
        self.assertEqual(cm.exception.code, StatusCode.PERMISSION_DENIED)
        self.assertIn("accessTokens.scopes", cm.exception.message)
        self.assertEqual(self.fake.auth, ["Bearer token-one", "Bearer token-two"], "the token file is read per call")

    def test_unimplemented(self) -> None:
        with secretproxy.Client("unix://" + self.sock, timeout=10) as c:
            calls: dict[str, Callable[[], Union[object, None]]] = {
                "get": lambda: c.get("db-user"),
                "batch_get": lambda: c.batch_get(["db-user"]),
                "list": lambda: c.list(),
                "refresh": lambda: c.refresh("db-user"),
                "watch": lambda: next(c.watch(["db-user"])),
            }
            for name, call in calls.items():
                with self.subTest(name):
                    with self.assertRaises(secretproxy.SecretProxyError) as cm:
                        call()
                    self.assertEqual(cm.exception.code, StatusCode.UNIMPLEMENTED)


if __name__ == "__main__":
    unittest.main()
