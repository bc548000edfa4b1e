"""The values the client returns: plain, typed, immutable records.

A Secret's value and an AccessToken's token are left out of repr() and str(),
so that printing or logging one (or a list of them, or an Update) never shows
the secret.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Mapping, Optional, Tuple

from google.protobuf import timestamp_pb2  # type: ignore[import]  # Debian packages no stubs

from secretproxy.v1 import secret_service_pb2 as pb


@dataclasses.dataclass(frozen=True)
class Secret:
    """One declared secret as the sidecar holds it."""

    name: str
    """The name the application uses, as declared in the sidecar's configuration."""
    value: str = dataclasses.field(repr=False)
    """The secret's value; empty in Client.list(). Never in repr()."""
    version: str
    """The Key Vault version id of this value."""
    content_type: str = ""
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    update_time: Optional[datetime.datetime] = None
    """When this version was last updated in the vault."""
    expire_time: Optional[datetime.datetime] = None
    """When this version expires; None when it has no expiry."""
    not_before_time: Optional[datetime.datetime] = None
    """When this version becomes valid; None when it has no such date."""
    refresh_time: Optional[datetime.datetime] = None
    """The last time the vault confirmed this value."""
    stale: bool = False
    """True when the sidecar's last refresh failed: value is the last good one."""

    @classmethod
    def from_proto(cls, m: pb.Secret) -> "Secret":
        return cls(
            name=m.name,
            value=m.value,
            version=m.version,
            content_type=m.content_type,
            tags=dict(m.tags),
            update_time=_time(m, "update_time"),
            expire_time=_time(m, "expire_time"),
            not_before_time=_time(m, "not_before_time"),
            refresh_time=_time(m, "refresh_time"),
            stale=m.stale,
        )


@dataclasses.dataclass(frozen=True)
class AccessToken:
    """A Microsoft Entra access token of the sidecar's identity, for one scope."""

    token: str = dataclasses.field(repr=False)
    """The bearer token. Never in repr()."""
    expire_time: Optional[datetime.datetime]
    """When the token expires (the sidecar serves it at least 1 minute before)."""

    @classmethod
    def from_proto(cls, m: pb.GetAccessTokenResponse) -> "AccessToken":
        return cls(token=m.token, expire_time=_time(m, "expire_time"))


@dataclasses.dataclass(frozen=True)
class Update:
    """One message of a watch."""

    initial: bool
    """True for the first message of each stream: a full snapshot of every
    watched secret. After a reconnect the snapshot comes again, so a change made
    while the sidecar was unreachable is not missed."""
    secrets: Tuple[Secret, ...]
    """Every watched secret (initial) or those that changed together."""

    def by_name(self) -> dict[str, Secret]:
        """The secrets of this update keyed by name."""
        return {s.name: s for s in self.secrets}


def _time(m: object, field: str) -> Optional[datetime.datetime]:
    """An unset Timestamp field is None, not 1970-01-01."""
    if not m.HasField(field):  # type: ignore[attr-defined]
        return None
    ts: timestamp_pb2.Timestamp = getattr(m, field)
    when: datetime.datetime = ts.ToDatetime(tzinfo=datetime.timezone.utc)
    return when
