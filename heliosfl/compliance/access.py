"""Access control for PHI: unique users, deny-by-default roles, sessions, break-glass.

HIPAA's access-control safeguard (45 CFR 164.312(a)) asks for unique user
identification, an emergency access procedure, automatic logoff, and encryption. This
module gives the first three: every user has a unique id and one role; a role grants an
explicit set of permissions and everything else is denied; a session ends after
``auto_logoff_secs`` without activity; break-glass grants a user time-limited emergency
access to PHI, flagged in every decision it allows (and in the audit log by the manager).

heliosfl identifies users by id; authenticating that a person is who the id says
(passwords, SSO) is the host application's job and is not done here.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from heliosfl.errors import ConfigError
from heliosfl.validation import check_float

__all__ = [
    "ROLE_PERMISSIONS",
    "AccessController",
    "Decision",
    "Permission",
    "Role",
    "Session",
]


class Role(StrEnum):
    """What a user is, for access decisions."""

    ADMIN = "admin"
    CLINICIAN = "clinician"
    DATA_SCIENTIST = "data_scientist"
    AUDITOR = "auditor"


class Permission(StrEnum):
    """What a user may do."""

    ENCRYPT_PHI = "encrypt_phi"
    DECRYPT_PHI = "decrypt_phi"
    SHRED_PHI = "shred_phi"
    ROTATE_KEYS = "rotate_keys"
    EXPORT_AUDIT = "export_audit"
    VERIFY_AUDIT = "verify_audit"
    VIEW_REPORT = "view_report"
    TRAIN = "train"
    MANAGE_USERS = "manage_users"


#: Deny by default: a role may do exactly what is listed. Administrators manage users and
#: keys but do not read PHI (they can break the glass, which is flagged and audited).
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(
            {
                Permission.MANAGE_USERS,
                Permission.ROTATE_KEYS,
                Permission.SHRED_PHI,
                Permission.VIEW_REPORT,
                Permission.ENCRYPT_PHI,
                Permission.EXPORT_AUDIT,
                Permission.VERIFY_AUDIT,
                Permission.TRAIN,
            }
        ),
        Role.CLINICIAN: frozenset({Permission.ENCRYPT_PHI, Permission.DECRYPT_PHI}),
        Role.DATA_SCIENTIST: frozenset({Permission.TRAIN, Permission.ENCRYPT_PHI}),
        Role.AUDITOR: frozenset(
            {Permission.EXPORT_AUDIT, Permission.VERIFY_AUDIT, Permission.VIEW_REPORT}
        ),
    }
)

#: Permissions break-glass access grants (PHI access in an emergency).
BREAK_GLASS_PERMISSIONS = frozenset({Permission.DECRYPT_PHI, Permission.ENCRYPT_PHI})


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of an access check; ``break_glass`` flags emergency access."""

    allowed: bool
    user_id: str
    permission: Permission
    reason: str
    break_glass: bool = False


@dataclass(slots=True)
class Session:
    """A logged-in user; ends after ``auto_logoff_secs`` without activity."""

    token: str
    user_id: str
    started_at: datetime
    last_seen: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def check_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is a str (the message shows only the type otherwise)."""
    if not isinstance(user_id, str):
        raise ConfigError("user_id", f"<{type(user_id).__name__}>", "a user id (str)")
    return user_id


class AccessController:
    """Users, roles, sessions and break-glass grants.

    Parameters
    ----------
    auto_logoff_secs : float
        Idle time after which a session ends (> 0).
    clock : callable
        Returns the current UTC time (injectable for tests).
    """

    def __init__(
        self, *, auto_logoff_secs: float = 900.0, clock: Callable[[], datetime] = _now
    ) -> None:
        seconds = check_float("auto_logoff_secs", auto_logoff_secs, low=0.0)
        self.auto_logoff = timedelta(seconds=seconds)
        self._clock = clock
        self._users: dict[str, Role] = {}
        self._sessions: dict[str, Session] = {}
        self._glass: dict[str, tuple[datetime, str]] = {}
        self._lock = threading.Lock()

    def add_user(self, user_id: str, role: Role | str) -> None:
        """Add a user with a unique id and one role.

        Raises
        ------
        ConfigError
            If the id is empty, already taken, or the role is unknown.
        """
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= 100:
            raise ConfigError("user_id", user_id, "a string of 1 to 100 characters")
        try:
            member = Role(str(role).lower())
        except ValueError:
            allowed = "one of " + ", ".join(repr(r.value) for r in Role)
            raise ConfigError("role", role, allowed) from None
        with self._lock:
            if user_id in self._users:
                raise ConfigError("user_id", user_id, "an id no other user has")
            self._users[user_id] = member

    def role(self, user_id: str) -> Role | None:
        """The user's role, or ``None`` for an unknown user."""
        return self._users.get(user_id) if isinstance(user_id, str) else None

    @property
    def users(self) -> dict[str, Role]:
        """Every user and their role."""
        return dict(self._users)

    def login(self, user_id: str) -> Session:
        """Open a session for a known user.

        Raises
        ------
        ConfigError
            For a user id that is not a str, or an unknown user.
        """
        if check_user_id(user_id) not in self._users:
            raise ConfigError("user_id", user_id, "a registered user (add_user first)")
        now = self._clock()
        session = Session(secrets.token_hex(16), user_id, now, now)
        with self._lock:
            self._sessions[session.token] = session
        return session

    def logout(self, token: str) -> None:
        """End a session (unknown tokens are ignored)."""
        with self._lock:
            self._sessions.pop(token, None)

    def active_session(self, user_id: str) -> Session | None:
        """The user's live session, ending idle ones (automatic logoff)."""
        now = self._clock()
        with self._lock:
            for token, session in list(self._sessions.items()):
                if now - session.last_seen > self.auto_logoff:
                    del self._sessions[token]
            live = [s for s in self._sessions.values() if s.user_id == user_id]
        return live[0] if live else None

    def break_glass(self, user_id: str, reason: str, *, duration_secs: float = 3600.0) -> datetime:
        """Grant a known user emergency PHI access until the returned time.

        Raises
        ------
        ConfigError
            For a non-str or unknown user, an empty reason, or a duration that is not a
            finite number in (0, 86400] seconds.
        """
        if check_user_id(user_id) not in self._users:
            raise ConfigError("user_id", user_id, "a registered user (add_user first)")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("reason", reason, "a non-empty justification")
        seconds = check_float("duration_secs", duration_secs, low=0.0, high=86_400.0)
        until = self._clock() + timedelta(seconds=seconds)
        with self._lock:
            self._glass[user_id] = (until, reason.strip()[:200])
        return until

    def check(
        self, user_id: str, permission: Permission, *, require_session: bool = False
    ) -> Decision:
        """Decide whether ``user_id`` may do ``permission`` now (deny by default).

        Raises
        ------
        ConfigError
            If ``user_id`` is not a str.
        """
        role = self._users.get(check_user_id(user_id))
        if role is None:
            return Decision(False, user_id, permission, "unknown user")
        if require_session:
            session = self.active_session(user_id)
            if session is None:
                return Decision(False, user_id, permission, "no active session (logged off)")
            session.last_seen = self._clock()
        if permission in ROLE_PERMISSIONS[role]:
            return Decision(True, user_id, permission, f"role {role.value} grants it")
        grant = self._glass.get(user_id)
        if grant is not None and permission in BREAK_GLASS_PERMISSIONS:
            until, reason = grant
            if self._clock() < until:
                return Decision(
                    True, user_id, permission, f"break-glass: {reason}", break_glass=True
                )
            with self._lock:
                self._glass.pop(user_id, None)
            return Decision(False, user_id, permission, "break-glass access expired")
        return Decision(False, user_id, permission, f"role {role.value} does not grant it")
