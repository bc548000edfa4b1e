"""Client: the application's side of the secret-proxy API."""

from __future__ import annotations

import enum
import json
import logging
import os
import threading
import urllib.parse
import weakref
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

import grpc

from secretproxy._errors import SecretProxyError, TokenFileError
from secretproxy._types import AccessToken, Secret
from secretproxy._watch import Watch
from secretproxy.v1 import secret_service_pb2 as pb
from secretproxy.v1 import secret_service_pb2_grpc as pb_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
"""Where the sidecar listens on TCP by default."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a unary call may take, waiting for the sidecar included. The sidecar
answers a secret it has not loaded yet with UNAVAILABLE 100 ms before the
deadline, so a starting sidecar gets most of this time to load it."""

# The same service config as the Go client (proto/client): every call waits for
# the sidecar to accept connections (it may start after the application) and
# UNAVAILABLE, which the sidecar answers while a secret is not loaded yet, is
# retried. Retries apply to unary calls and to a stream until its first message;
# Watch handles the rest itself.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "secretproxy.v1.SecretService"}],
                "waitForReady": True,
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)



class _ClientDefault(enum.Enum):
    TIMEOUT = "the client's timeout"


CLIENT_DEFAULT = _ClientDefault.TIMEOUT
"""A call's timeout argument left out: the Client's timeout applies."""

Timeout = Union[float, None, _ClientDefault]
"""Seconds, None (wait for ever), or CLIENT_DEFAULT."""

_Metadata = Tuple[Tuple[str, str], ...]

# Returned lists use this alias: inside Client, the name `list` is the method.
SecretList = List[Secret]


class Client:
    """A connection to the sidecar in the same pod. Safe for use from several threads.

    target is "unix:///path/to/grpc.sock" or "host:port" (normally
    127.0.0.1:50051). The bearer token, when the sidecar wants one
    (clientAuth.tokenFile), comes from token or, better, token_file: the file is
    read again for every call and every watch reconnect, so a token that
    Kubernetes rotates is picked up.

    Creating a Client does not connect; calls wait for the sidecar, up to
    timeout seconds (default DEFAULT_TIMEOUT; None waits for ever).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: Optional[str] = None,
        token_file: Union[str, "os.PathLike[str]", None] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        logger: Optional[logging.Logger] = None,
        options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        _validate_target(target)
        if token is not None and token_file is not None:
            raise ValueError("secretproxy: set either token or token_file, not both")
        if token is not None and not token.strip():
            raise ValueError("secretproxy: token is empty")
        if min_backoff <= 0 or max_backoff < min_backoff:
            raise ValueError(f"secretproxy: invalid back-off bounds {min_backoff}..{max_backoff} s")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"secretproxy: timeout must be positive or None, got {timeout}")
        self._target = target
        self._token = token.strip() if token is not None else None
        self._token_file = os.fspath(token_file) if token_file is not None else None
        self._timeout = timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._logger = logger or logging.getLogger("secretproxy")
        # The sidecar is in the same pod, reached over a unix socket or
        # loopback, never the network: no transport security, and the bearer
        # token goes as per-call metadata. The channel reconnects within 5 s
        # (gRPC's default allows 2 minutes): a restarting sidecar is back in a
        # second or two.
        channel_options: List[Tuple[str, Any]] = [
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 5000),
            # The sidecar's largest message, as the Go client accepts (gRPC's default is 4 MiB).
            ("grpc.max_receive_message_length", 16 << 20),
        ]
        channel_options.extend(options)
        self._channel = grpc.insecure_channel(target, options=channel_options)
        self._stub = pb_grpc.SecretServiceStub(self._channel)
        self._lock = threading.Lock()
        self._closed = False
        self._watches: "weakref.WeakSet[Watch]" = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"Client(target={self._target!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ends every watch of this client and closes the connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watches = list(self._watches)
        for w in watches:
            w.close()
        self._channel.close()

    def get(self, name: str, *, timeout: Timeout = CLIENT_DEFAULT) -> Secret:
        """One declared secret from the sidecar's cache."""
        resp = self._unary(f"get secret {name!r}", self._stub.GetSecret, pb.GetSecretRequest(name=name), timeout)
        return Secret.from_proto(resp.secret)

    def batch_get(self, names: Iterable[str], *, timeout: Timeout = CLIENT_DEFAULT) -> SecretList:
        """Several secrets at once, all or nothing, in the order of names."""
        wanted = _names(names)
        resp = self._unary(
            f"batch get secrets {wanted!r}", self._stub.BatchGetSecrets, pb.BatchGetSecretsRequest(names=wanted), timeout
        )
        return [Secret.from_proto(s) for s in resp.secrets]

    def refresh(self, name: str, *, timeout: Timeout = CLIENT_DEFAULT) -> Secret:
        """Ask the sidecar to read a secret from the vault now, for when the
        cached value stopped working (a database login failed, say). The sidecar
        limits this to one vault read per secret per refresh.minInterval and
        answers from its cache within that interval."""
        resp = self._unary(
            f"refresh secret {name!r}", self._stub.RefreshSecret, pb.RefreshSecretRequest(name=name), timeout
        )
        return Secret.from_proto(resp.secret)

    def get_access_token(self, scope: str, *, timeout: Timeout = CLIENT_DEFAULT) -> AccessToken:
        """A Microsoft Entra access token of the sidecar's own identity for
        scope, which must be in the sidecar's accessTokens.scopes, for example
        "https://database.windows.net/.default" to log in to Azure SQL without
        a password."""
        resp = self._unary(
            f"get access token for {scope!r}",
            self._stub.GetAccessToken,
            pb.GetAccessTokenRequest(scope=scope),
            timeout,
        )
        return AccessToken.from_proto(resp)

    def watch(self, names: Iterable[str] = ()) -> Watch:
        """Stream the named secrets (none: every declared secret).

        The returned Watch is an iterator of Update: first a snapshot of every
        watched secret (initial=True), then the secrets that changed together.
        When the stream breaks (the sidecar restarts, say) it reconnects with
        jittered exponential back-off, between min_backoff and max_backoff, and
        yields a fresh snapshot (initial=True again). It raises
        SecretProxyError when the sidecar refuses the request itself
        (INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED, UNIMPLEMENTED):
        configuration mistakes that retrying cannot mend. close() (from any
        thread), or leaving its `with` block, ends it.
        """
        wanted = _names(names)
        with self._lock:
            if self._closed:
                raise ValueError("secretproxy: watch on a closed client")
            w = Watch(
                open_stream=lambda: self._open_watch(wanted),
                min_backoff=self._min_backoff,
                max_backoff=self._max_backoff,
                logger=self._logger,
            )
            self._watches.add(w)
        return w

    # Named `list` as the issue asks; the builtin is not used below this point.
    def list(self, *, timeout: Timeout = CLIENT_DEFAULT) -> SecretList:
        """Every declared secret, without values."""
        resp = self._unary("list secrets", self._stub.ListSecrets, pb.ListSecretsRequest(), timeout)
        return [Secret.from_proto(s) for s in resp.secrets]

    def _open_watch(self, names: Sequence[str]) -> Any:
        md = self._metadata("watch secrets")
        return self._stub.WatchSecrets(pb.WatchSecretsRequest(names=names), metadata=md, wait_for_ready=True)

    def _unary(self, operation: str, method: Callable[..., Any], request: Any, timeout: Timeout) -> Any:
        if isinstance(timeout, _ClientDefault):
            timeout = self._timeout
        md = self._metadata(operation)
        try:
            return method(request, timeout=timeout, metadata=md, wait_for_ready=True)
        except grpc.RpcError as err:
            # from None: grpc's own exception repeats the status with transport
            # debugging text; the status code and message are what matter.
            raise SecretProxyError.from_rpc_error(operation, err) from None

    def _metadata(self, operation: str) -> Optional[_Metadata]:
        token = self._token
        if self._token_file is not None:
            try:
                with open(self._token_file, encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as err:
                raise TokenFileError(
                    operation, f"read the sidecar token file {self._token_file}: {err.strerror or err}"
                ) from None
            if not token:
                raise TokenFileError(operation, f"the sidecar token file {self._token_file} is empty")
        if token is None:
            return None
        return (("authorization", "Bearer " + token),)


def _names(names: Iterable[str]) -> List[str]:
    # A str is an Iterable[str] of characters: a call with one name where a
    # list belongs would ask for secrets named "d", "b", ...
    if isinstance(names, str):
        raise TypeError(f"secretproxy: names must be a list of names, not the string {names!r}")
    return [*names]


def _validate_target(target: str) -> None:
    if not target:
        raise ValueError("secretproxy: empty sidecar address: want unix:///path/grpc.sock or 127.0.0.1:50051")
    if target.startswith("unix://"):
        if not target[len("unix://") :].startswith("/"):
            raise ValueError(
                f"secretproxy: sidecar address {target!r}: a unix socket needs an absolute path (unix:///path/grpc.sock)"
            )
        return
    if "://" in target:
        raise ValueError(f"secretproxy: sidecar address {target!r}: only unix:// or host:port are supported")
    try:
        parts = urllib.parse.urlsplit("//" + target)
        port = parts.port
    except ValueError as err:
        raise ValueError(f"secretproxy: sidecar address {target!r}: want host:port: {err}") from None
    if not parts.hostname or port is None or parts.path or parts.query or parts.fragment:
        raise ValueError(f"secretproxy: sidecar address {target!r}: want host:port, e.g. 127.0.0.1:50051")
