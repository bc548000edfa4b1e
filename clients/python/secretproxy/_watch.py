"""Watch: a WatchSecrets stream kept open across sidecar restarts."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, Callable, Iterator, Optional

import grpc

from secretproxy._errors import SecretProxyError
from secretproxy._types import Secret, Update

# The sidecar refuses the request itself: configuration mistakes that retrying
# cannot mend (the same set as the Go client's Watch).
PERMANENT_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


def backoff_wait(delay: float, rand: Callable[[], float] = random.random) -> float:
    """The wait before a reconnect: uniform in [delay/2, delay]. The jitter keeps
    a fleet of applications from reconnecting in step when sidecars restart."""
    return delay / 2 + rand() * delay / 2


class Watch(Iterator[Update]):
    """An iterator of Update over a WatchSecrets stream that reconnects.

    Made by Client.watch(). next() blocks until the next message; it raises
    StopIteration once close() was called (from any thread) and
    SecretProxyError on a permanent error (see PERMANENT_CODES), after which
    the watch is closed.
    """

    def __init__(
        self,
        open_stream: Callable[[], Any],
        min_backoff: float,
        max_backoff: float,
        logger: logging.Logger,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._open_stream = open_stream
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._logger = logger
        self._rand = rand
        self._delay = min_backoff
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._stream: Optional[Any] = None  # the current call: an iterator and a grpc.Call
        self._first = True
        self.reconnects = 0
        """How many times the stream broke and was opened again."""

    def __repr__(self) -> str:
        return f"<secretproxy.Watch closed={self._closed.is_set()} reconnects={self.reconnects}>"

    def __iter__(self) -> "Watch":
        return self

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the watch: a next() blocked in another thread raises StopIteration."""
        with self._lock:
            self._closed.set()
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.cancel()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __next__(self) -> Update:
        while True:
            stream = self._current_stream()
            try:
                msg = next(stream)
            except StopIteration:
                # The sidecar ended the stream with OK, which it never does on
                # purpose; treat it like any interruption.
                code, message = grpc.StatusCode.OK, "stream ended"
            except grpc.RpcError as err:
                if self._closed.is_set():
                    raise StopIteration from None
                failure = SecretProxyError.from_rpc_error("watch secrets", err)
                if failure.code in PERMANENT_CODES:
                    self.close()
                    raise failure from None
                code, message = failure.code, failure.message
            else:
                first, self._first = self._first, False
                # A message came: the next interruption starts the back-off over.
                self._delay = self._min_backoff
                return Update(initial=first, secrets=tuple(Secret.from_proto(s) for s in msg.secrets))
            self._reconnect_after(code, message)

    def _current_stream(self) -> Any:
        with self._lock:
            if self._closed.is_set():
                raise StopIteration
            if self._stream is not None:
                return self._stream
        try:
            stream = self._open_stream()
        except SecretProxyError:
            # The token file is unreadable: a permanent error too.
            self.close()
            raise
        with self._lock:
            if self._closed.is_set():  # closed while opening
                stream.cancel()
                raise StopIteration
            self._stream = stream
            self._first = True
            return stream

    def _reconnect_after(self, code: grpc.StatusCode, message: str) -> None:
        with self._lock:
            self._stream = None
        wait = backoff_wait(self._delay, self._rand)
        # The status message never holds a secret value (the sidecar's promise),
        # and no value passes through here.
        self._logger.warning(
            "secret watch interrupted (%s: %s); reconnecting in %.2fs", code.name, message, wait
        )
        if self._closed.wait(wait):
            raise StopIteration
        self._delay = min(self._delay * 2, self._max_backoff)
        self.reconnects += 1
