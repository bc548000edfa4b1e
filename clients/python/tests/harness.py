"""The real programs for the Python client's tests: kv-emulator (Key Vault and
the managed-identity endpoint over their real protocols, TLS with its own CA)
and secret-proxy, built from this repository with `go build` and run as
processes bound to 127.0.0.1 and unix sockets. Every process is stopped by the
test that started it (addCleanup), and gets SIGTERM from the kernel if the test
runner itself dies (PR_SET_PDEATHSIG).

The same set-up as e2e/pod (Go), which the demo uses.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, TypeVar

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

# The order application's four credentials, as the orderapp declares them
# (e2e/pod.DatabaseSecrets): the name the app asks for -> the vault's name.
DATABASE_SECRETS = {
    "db-server": "sql-server-name",
    "db-user": "sql-user",
    "db-password": "sql-password",
    "db-name": "sql-database",
}

START_TIMEOUT = 60.0  # seconds for a program to be ready; generous for a loaded 2-core machine

T = TypeVar("T")


def require_runtime() -> None:
    """Skip loudly (fail under CI=true) when Debian's gRPC runtime is missing."""
    try:
        import grpc  # noqa: F401
        import google.protobuf  # type: ignore[import]  # noqa: F401
    except ImportError as err:
        msg = (
            f"PYTHON CLIENT TESTS DID NOT RUN: {err}. Install Debian's packages: "
            "sudo apt-get install -y python3-grpcio python3-protobuf "
            "(or: sudo bash tools/scripts/install-test-deps.sh python)"
        )
        banner(msg)
        if os.environ.get("CI") == "true":
            raise RuntimeError(msg) from err
        raise unittest.SkipTest(msg) from err


def banner(msg: str) -> None:
    import sys

    line = "!" * 78
    print(f"\n{line}\n!!! {msg}\n{line}\n", file=sys.stderr, flush=True)


def poll(what: str, check: Callable[[], Optional[T]], timeout: float = START_TIMEOUT, every: float = 0.02) -> T:
    """Call check until it returns something other than None, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def free_addr() -> str:
    """A free 127.0.0.1 address (another process may take it first; callers use it at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        host, port = s.getsockname()
        return f"{host}:{port}"


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGTERM when the test runner dies.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Process:
    """A running program whose stdout and stderr lines are kept."""

    def __init__(self, name: str, args: Sequence[str], env: Dict[str, str]) -> None:
        self.name = name
        self._lines: List[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            list(args),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self._lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self._lines)

    def wait_for_line(self, match: Callable[[str], bool], timeout: float = START_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for line in self._lines[seen:]:
                    if match(line):
                        return line
                seen = len(self._lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"{self.name} exited ({self.proc.returncode}) first:\n{self.output_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for a line of {self.name}:\n{self.output_tail()}")
                self._cond.wait(min(left, 0.5))

    def output_tail(self, n: int = 40) -> str:
        with self._cond:
            return "\n".join(self._lines[-n:])

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after grace seconds; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


@dataclass
class Binaries:
    secret_proxy: str
    kv_emulator: str


def build(out_dir: str) -> Binaries:
    """go build secret-proxy and kv-emulator from this repository into out_dir."""
    if shutil.which("go") is None:
        raise RuntimeError("the Python client's tests build secret-proxy and kv-emulator: `go` is not on PATH")
    b = Binaries(os.path.join(out_dir, "secret-proxy"), os.path.join(out_dir, "kv-emulator"))
    for pkg, out in (("./cmd/secret-proxy", b.secret_proxy), ("./cmd/kv-emulator", b.kv_emulator)):
        res = subprocess.run(
            ["go", "build", "-tags", "grpcnotrace", "-o", out, pkg],
            cwd=os.path.join(REPO_ROOT, "sidecar"),
            env={**os.environ, "CGO_ENABLED": "0"},
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise RuntimeError(f"go build {pkg} failed:\n{res.stdout}{res.stderr}")
    return b


class Emulator:
    """A running kv-emulator seeded with secrets (vault name -> value)."""

    def __init__(self, binary: str, work_dir: str, secrets: Dict[str, str]) -> None:
        seed = os.path.join(work_dir, "vault-seed.json")
        with open(seed, "w", encoding="utf-8") as f:
            json.dump({"secrets": secrets}, f)
        self.ca_file = os.path.join(work_dir, "emulator-ca.pem")
        self.process = Process(
            "kv-emulator",
            [
                binary,
                "--vault-listen", "127.0.0.1:0",
                "--identity-listen", "127.0.0.1:0",
                "--seed", seed,
                "--ca-out", self.ca_file,
                "--identity-header-out", os.path.join(work_dir, "identity-header.txt"),
            ],
            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")},
        )
        try:
            self.process.wait_for_line(lambda l: l == "kv-emulator ready")
            env = {}
            for line in self.process.output().splitlines():
                k, sep, v = line.strip().partition("=")
                if sep and k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_KEYVAULT_URL"):
                    env[k] = v
            self.vault_url = env["AZURE_KEYVAULT_URL"]
            self.identity_endpoint = env["IDENTITY_ENDPOINT"]
            self.identity_header = env["IDENTITY_HEADER"]
        except BaseException:
            self.process.stop(5)
            raise
        self._tls = ssl.create_default_context(cafile=self.ca_file)

    def client_env(self) -> Dict[str, str]:
        """What secret-proxy needs to reach this emulator through the real
        managed-identity and Key Vault protocols."""
        return {
            "SSL_CERT_FILE": self.ca_file,
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
        }

    def set_secret(self, vault_name: str, value: str) -> str:
        """A new version of a vault secret, through the admin API; returns its version id."""
        req = urllib.request.Request(
            self.vault_url.rstrip("/") + "/admin/secrets/" + vault_name,
            data=json.dumps({"value": value}).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self._tls, timeout=10) as resp:
            version = json.load(resp)["version"]
        assert version, "the emulator returned no version"
        return str(version)

    def queue_token(self, resource: str, token: str) -> None:
        """The next access token the identity endpoints issue for resource (PUT /admin/tokens)."""
        req = urllib.request.Request(
            self.vault_url.rstrip("/") + "/admin/tokens",
            data=json.dumps({"next": [{"resource": resource, "token": token}]}).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self._tls, timeout=10) as resp:
            queued = json.load(resp).get("queued", {})
        assert queued, "the emulator queued no token"

    def stop(self) -> None:
        self.process.stop()


@dataclass
class SidecarConfig:
    vault_url: str
    secrets: Dict[str, str]  # declared name -> vault name
    optional: Sequence[str] = ()
    grpc: str = ""
    unix: str = ""
    ops: str = ""
    token_file: str = ""
    interval: str = "1h"
    min_interval: str = "1ms"
    access_token_scopes: Sequence[str] = ()

    def yaml(self) -> str:
        # JSON strings are valid YAML scalars, so json.dumps quotes safely.
        q = json.dumps
        lines = [
            "vault:",
            f"  url: {q(self.vault_url)}",
            "  disableChallengeResourceVerification: true",
            "auth:",
            "  mode: managed-identity",
            "  disableInstanceDiscovery: true",
            "secrets:",
        ]
        for name, vault_name in self.secrets.items():
            lines += [f"  - name: {q(name)}", f"    vaultSecret: {q(vault_name)}"]
            if name in self.optional:
                lines.append("    optional: true")
        lines += [
            "refresh:",
            f"  interval: {self.interval}",
            "  jitter: 0.1",
            f"  minInterval: {self.min_interval}",
            "listen:",
            f"  grpc: {q(self.grpc)}",
            f"  unix: {q(self.unix)}",
            f"  ops: {q(self.ops)}",
        ]
        if self.token_file:
            lines += ["clientAuth:", f"  tokenFile: {q(self.token_file)}"]
        if self.access_token_scopes:
            lines += ["accessTokens:", "  scopes:"] + [f"    - {q(s)}" for s in self.access_token_scopes]
        lines += ["log:", "  level: info", "  format: json"]
        return "\n".join(lines) + "\n"


@dataclass
class Sidecar:
    """A running secret-proxy; start() again after stop() restarts it on the same addresses."""

    binary: str
    config: SidecarConfig
    config_file: str
    env: Dict[str, str]
    process: Optional[Process] = field(default=None)

    def start(self) -> None:
        with open(self.config_file, "w", encoding="utf-8") as f:
            f.write(self.config.yaml())
        self.process = Process(
            "secret-proxy",
            [self.binary, "--config", self.config_file],
            env={"PATH": os.environ.get("PATH", ""), **self.env},
        )
        try:
            self.wait_ready()
        except BaseException:
            self.process.stop(5)
            raise

    def wait_ready(self) -> None:
        url = f"http://{self.config.ops}/readyz"
        assert self.process is not None
        proc: Process = self.process

        def ready() -> Optional[bool]:
            if proc.proc.poll() is not None:
                raise AssertionError(f"secret-proxy exited ({proc.proc.returncode}):\n{proc.output_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return True if resp.status == 200 else None
            except (urllib.error.URLError, OSError):
                return None

        poll("secret-proxy /readyz", ready)

    def stop(self) -> int:
        assert self.process is not None
        return self.process.stop()


class Pod:
    """One emulator and the sidecars a test class starts; stop() ends them all."""

    def __init__(self, binaries: Binaries, vault_secrets: Dict[str, str]) -> None:
        self.dir = tempfile.mkdtemp(prefix="secretproxy-py-")
        self._sidecars: List[Sidecar] = []
        self.emulator: Optional[Emulator] = None
        self.bin = binaries
        try:
            self.emulator = Emulator(self.bin.kv_emulator, self.dir, vault_secrets)
        except BaseException:
            self.stop()
            raise

    def sidecar(self, name: str, **kw: object) -> Sidecar:
        """Start a secret-proxy on a fresh unix socket, TCP port and ops port."""
        assert self.emulator is not None
        cfg = SidecarConfig(
            vault_url=self.emulator.vault_url,
            unix=os.path.join(self.dir, f"{name}.sock"),
            grpc=free_addr(),
            ops=free_addr(),
            **kw,  # type: ignore[arg-type]
        )
        sc = Sidecar(self.bin.secret_proxy, cfg, os.path.join(self.dir, f"{name}.yaml"), self.emulator.client_env())
        sc.start()
        self._sidecars.append(sc)
        return sc

    def write_file(self, name: str, content: str) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(path, 0o600)
        return path

    def stop(self) -> None:
        for sc in reversed(self._sidecars):
            if sc.process is not None:
                sc.process.stop()
        if self.emulator is not None:
            self.emulator.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
