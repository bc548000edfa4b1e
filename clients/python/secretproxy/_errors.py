"""Errors: every failed call raises SecretProxyError with the gRPC status."""

from __future__ import annotations

import grpc


class SecretProxyError(Exception):
    """A call to the sidecar failed.

    code is the gRPC status code (grpc.StatusCode, re-exported as
    secretproxy.StatusCode) and message the sidecar's status message, which
    says what to do and never holds a secret value. The codes the sidecar
    answers are documented in proto/secretproxy/v1/secret_service.proto:
    INVALID_ARGUMENT (malformed name), PERMISSION_DENIED (not declared),
    NOT_FOUND (absent from the vault), UNAVAILABLE (not loaded yet; retry),
    UNAUTHENTICATED (token refused), FAILED_PRECONDITION (disabled or expired).
    """

    def __init__(self, operation: str, code: grpc.StatusCode, message: str) -> None:
        self.operation = operation
        self.code = code
        self.message = message
        super().__init__(f"{operation}: {code.name}: {message}")

    @classmethod
    def from_rpc_error(cls, operation: str, err: grpc.RpcError) -> "SecretProxyError":
        # Every RpcError a call raises is also a grpc.Call with code() and details().
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = err.details() if hasattr(err, "details") else ""
        return cls(operation, code or grpc.StatusCode.UNKNOWN, details or "")


class TokenFileError(SecretProxyError):
    """The bearer token file could not be read, or is empty.

    Its code is UNAUTHENTICATED: without the token the sidecar would refuse the
    call, and a watch stops on it rather than retrying a configuration mistake.
    """

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(operation, grpc.StatusCode.UNAUTHENTICATED, message)
