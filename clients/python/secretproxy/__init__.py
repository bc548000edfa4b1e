"""secretproxy: the Python client of the secret-proxy sidecar.

The sidecar in the same pod holds the cloud credential and serves the declared
Azure Key Vault secrets over a local gRPC API; this package is the application's
side of it:

    import secretproxy

    with secretproxy.Client("unix:///var/run/secret-proxy/grpc.sock",
                             token_file="/var/run/secret-proxy/token") as sp:
        password = sp.get("db-password")          # a Secret: .value, .version, ...
        for update in sp.watch(["db-user", "db-password"]):
            ...                                    # swap the credentials

Every failed call raises SecretProxyError with the gRPC status code and the
sidecar's message. No repr() or log line of this package shows a secret value.
See docs/python.md.
"""

from grpc import StatusCode

from secretproxy._client import CLIENT_DEFAULT, DEFAULT_TARGET, DEFAULT_TIMEOUT, Client, Timeout
from secretproxy._errors import SecretProxyError, TokenFileError
from secretproxy._types import AccessToken, Secret, Update
from secretproxy._watch import PERMANENT_CODES, Watch

__all__ = [
    "AccessToken",
    "CLIENT_DEFAULT",
    "Client",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "PERMANENT_CODES",
    "Secret",
    "SecretProxyError",
    "StatusCode",
    "Timeout",
    "TokenFileError",
    "Update",
    "Watch",
]
