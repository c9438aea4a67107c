"""HIPAA settings, and where the key-encryption key comes from by default."""

from __future__ import annotations

import hashlib
import os
import weakref
from dataclasses import dataclass
from pathlib import Path

from heliosfl.compliance.keys import KeyEncryptionKey, check_key_size
from heliosfl.errors import ConfigError
from heliosfl.store import Workspace
from heliosfl.validation import check_float

__all__ = ["HipaaConfig", "check_workspace", "default_audit_head", "default_kek"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HipaaConfig:
    """The guide's HIPAA settings.

    Parameters
    ----------
    encrypt_phi_at_rest : bool
        PHI is stored only encrypted (AES-256-GCM, envelope keys).
    encrypt_phi_in_transit : bool
        Required by the report; in-process simulation transmits nothing, and secure
        aggregation (when enabled) protects updates in transit.
    enable_audit_logging : bool
        Every PHI access, denial and training event goes to the hash-chained audit log.
    data_residency : str
        Region PHI nodes must be in (e.g. ``"US"``).
    enable_access_controls : bool
        Deny-by-default roles gate every encryption, decryption and export.
    enable_integrity_checks : bool
        Checkpoints get HMAC integrity tags, verified on read.
    min_key_size_bits : int
        At least 256 (AES-256); smaller is refused.
    auto_detect_phi : bool
        Node data is scanned for undeclared PHI before it may train.
    auto_logoff_secs : float
        Idle sessions end after this many seconds (a finite number > 0).
    """

    encrypt_phi_at_rest: bool = True
    encrypt_phi_in_transit: bool = True
    enable_audit_logging: bool = True
    data_residency: str = "US"
    enable_access_controls: bool = True
    enable_integrity_checks: bool = True
    min_key_size_bits: int = 256
    auto_detect_phi: bool = True
    auto_logoff_secs: float = 900.0

    def __post_init__(self) -> None:
        check_key_size(self.min_key_size_bits)
        for name in (
            "encrypt_phi_at_rest",
            "encrypt_phi_in_transit",
            "enable_audit_logging",
            "enable_access_controls",
            "enable_integrity_checks",
            "auto_detect_phi",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"hipaa_config.{name}", getattr(self, name), "True or False")
        if not isinstance(self.data_residency, str) or not self.data_residency.strip():
            raise ConfigError(
                "hipaa_config.data_residency", self.data_residency, "a region code like 'US'"
            )
        logoff = check_float("hipaa_config.auto_logoff_secs", self.auto_logoff_secs, low=0.0)
        object.__setattr__(self, "auto_logoff_secs", logoff)


def check_workspace(workspace: object) -> Workspace:
    """Return ``workspace`` (a new in-memory one for ``None``) if it is a :class:`Workspace`.

    Raises
    ------
    ConfigError
        For anything else, such as a path (open it with ``Workspace(path)`` first).
    """
    if workspace is None:
        return Workspace()
    if not isinstance(workspace, Workspace):
        raise ConfigError(
            "workspace",
            f"<{type(workspace).__name__}>",
            "a heliosfl.Workspace or None",
            "Open a file with Workspace(path) and pass that.",
        )
    return workspace


def _key_dir() -> Path:
    return Path(os.environ.get("HELIOSFL_KEY_DIR", "~/.heliosfl/keys")).expanduser()


_EPHEMERAL: weakref.WeakKeyDictionary[Workspace, KeyEncryptionKey] = weakref.WeakKeyDictionary()


def _beside_keys(workspace: Workspace, suffix: str) -> Path:
    assert workspace.path is not None  # noqa: S101 - persistent workspaces only
    directory = _key_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tag = hashlib.sha256(str(workspace.path.resolve()).encode()).hexdigest()[:12]
    return directory / f"{workspace.path.stem}-{tag}{suffix}"


def default_audit_head(workspace: Workspace, suffix: str) -> Path | None:
    """Where a manager keeps its audit-log head for `workspace` (``None``: in memory).

    A persistent workspace gets a file in the key directory (``HELIOSFL_KEY_DIR``), apart
    from the data, whatever the KEK's source, so that entries cut from the log are found
    after a restart too; an in-memory workspace keeps the head in memory.
    """
    if workspace.path is None:
        return None
    return _beside_keys(workspace, suffix)


def default_kek(workspace: Workspace) -> tuple[KeyEncryptionKey, Path | None]:
    """The KEK a manager uses when given none, and its key file (``None`` if none).

    ``HELIOSFL_KEK`` if set; an ephemeral key for an in-memory workspace (one per
    workspace, so a HIPAA and a GDPR manager on it share it, and gone with it); otherwise
    an owner-only key file in ``HELIOSFL_KEY_DIR`` (default ``~/.heliosfl/keys``), apart
    from the data, created on first use.
    """
    if os.environ.get("HELIOSFL_KEK"):
        return KeyEncryptionKey.from_env("HELIOSFL_KEK"), None
    if workspace.path is None:
        kek = _EPHEMERAL.get(workspace)
        if kek is None:
            kek = _EPHEMERAL[workspace] = KeyEncryptionKey.ephemeral()
        return kek, None
    path = _beside_keys(workspace, ".kek")
    if path.exists():
        return KeyEncryptionKey.from_file(path), path
    return KeyEncryptionKey.create_file(path), path
