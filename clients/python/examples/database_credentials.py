#!/usr/bin/env python3
"""Read the order application's four database credentials from the secret-proxy
sidecar and print their versions, never their values.

The application holds no cloud credential and links no Azure SDK: the sidecar
in the same pod authenticates to Key Vault with the pod's identity.

    # with `make demo` running in another terminal (it serves 127.0.0.1:50051):
    PYTHONPATH=clients/python python3 clients/python/examples/database_credentials.py
    # in a pod: the unix socket and the token file the sidecar is configured with
    ... database_credentials.py --sidecar unix:///var/run/secret-proxy/grpc.sock \\
                                --token-file /var/run/secret-proxy/token --watch
"""

from __future__ import annotations

import argparse
import os
import sys

import secretproxy

# The names the order application asks for (orderapp/internal/secrets).
DATABASE_SECRETS = ["db-server", "db-user", "db-password", "db-name"]


def describe(s: secretproxy.Secret) -> str:
    updated = s.update_time.isoformat() if s.update_time else "-"
    stale = "  STALE (the sidecar serves the last good value)" if s.stale else ""
    return f"{s.name:<12} version {s.version}  updated {updated}{stale}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sidecar",
        default=os.environ.get("SECRETPROXY_ADDR", secretproxy.DEFAULT_TARGET),
        help="unix:///path/grpc.sock or host:port (default: $SECRETPROXY_ADDR or %(default)s)",
    )
    p.add_argument(
        "--token-file",
        default=os.environ.get("SECRETPROXY_TOKEN_FILE"),
        help="bearer token file, when the sidecar sets clientAuth.tokenFile (default: $SECRETPROXY_TOKEN_FILE)",
    )
    p.add_argument("--watch", action="store_true", help="then print each new version until Ctrl-C")
    args = p.parse_args()

    with secretproxy.Client(args.sidecar, token_file=args.token_file) as sidecar:
        try:
            # One call, all or nothing: the four values belong together.
            creds = sidecar.batch_get(DATABASE_SECRETS)
        except secretproxy.SecretProxyError as err:
            # The message says what to do (declare the name, fix the token, ...).
            print(f"cannot read the database credentials: {err}", file=sys.stderr)
            return 1
        for s in creds:
            print(describe(s))
        # Here the application would connect:
        #   connect(server=creds[0].value, user=creds[1].value, password=creds[2].value, database=creds[3].value)
        if not args.watch:
            return 0

        print("watching for new versions (Ctrl-C stops)", flush=True)
        try:
            for update in sidecar.watch(DATABASE_SECRETS):
                if update.initial:
                    # The first message, and the first after each reconnect (a sidecar
                    # restart, say): all four as they are now.
                    print("snapshot:", ", ".join(f"{s.name} {s.version}" for s in update.secrets), flush=True)
                    continue
                # The secrets that changed together: swap the pool with all of them at once.
                for s in update.secrets:
                    print("new version:", describe(s), flush=True)
        except KeyboardInterrupt:
            return 0
        except secretproxy.SecretProxyError as err:
            print(f"watch stopped: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
