"""The key-encryption key (KEK): the one secret kept apart from the data.

Everything encrypted in a workspace is in the end wrapped by a :class:`KeyEncryptionKey`
(32 bytes) that never enters the workspace. It comes from a passphrase (scrypt), a key file
readable by its owner only, an environment variable, or lives in memory only. The raw key
is used only as HKDF-SHA256 input keying material; ciphers and MACs use subkeys::

    KEK ─ HKDF(internal) ─────────> AES-256-GCM key of wrap() / unwrap()
        ─ HKDF("pseudonym") ──────> HMAC-SHA256 key of pseudonym()
        ─ HKDF("audit-log-hmac") ─> HMAC-SHA256 key of the audit chain

Assumptions: ``os.urandom`` is a secure source; the process's memory and the key file's
owner are trusted (Python cannot erase ``bytes``: a key stays in memory until collected);
file permission checks use POSIX mode bits.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import unicodedata
from pathlib import Path
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from heliosfl.errors import ComplianceError, ConfigError

__all__ = [
    "DEFAULT_ENV_VAR",
    "KEY_BYTES",
    "MIN_KEY_SIZE_BITS",
    "MIN_PASSPHRASE_CHARS",
    "SCRYPT_COST",
    "SCRYPT_MIN_COST",
    "KeyEncryptionKey",
    "check_key_size",
]

KEY_BYTES = 32
MIN_KEY_SIZE_BITS = 256
MIN_PASSPHRASE_CHARS = 12
SCRYPT_COST = 2**15
SCRYPT_MIN_COST = 2**14
DEFAULT_ENV_VAR = "HELIOSFL_KEK"
_MIN_SALT_BYTES = 16
_NONCE_BYTES = 12
_WRAP_FORMAT = b"\x01"
_WRAP_AAD = b"heliosfl-kek-wrap|v1|"


def check_key_size(bits: int) -> int:
    """Return `bits`, a required minimum key size, if heliosfl's 256-bit keys meet it.

    Raises ConfigError if `bits` is not an int, is below 256 (weaker than AES-256 is
    refused) or above 256 (a minimum larger than the keys in use cannot be met).
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits < MIN_KEY_SIZE_BITS:
        raise ConfigError("min_key_size_bits", bits, "an int >= 256", "AES-256 is required.")
    if bits > MIN_KEY_SIZE_BITS:
        raise ConfigError("min_key_size_bits", bits, "at most 256, the size of heliosfl's keys")
    return bits


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=info).derive(key)


def _refuse(path: Path, problem: str) -> NoReturn:
    raise ComplianceError(f"Key-encryption key file {str(path)!r} {problem}")


class KeyEncryptionKey:
    """A 256-bit key-encryption key: never printed, pickled or stored beside the data.

    Made from exactly 32 bytes (ConfigError otherwise, reporting the length, never the
    bytes) or by the factories :meth:`from_passphrase`, :meth:`from_file`,
    :meth:`create_file`, :meth:`from_env` and :meth:`ephemeral`. ``repr`` shows
    :attr:`key_id` only; equality is constant-time; pickling raises ComplianceError and
    copying returns the same object.
    """

    __slots__ = ("_key", "_wrapper")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            size = f"<{len(key)} bytes>" if isinstance(key, bytes) else f"<{type(key).__name__}>"
            raise ConfigError("key", size, f"exactly {KEY_BYTES} bytes (a 256-bit key)")
        self._key = key
        self._wrapper = AESGCM(_hkdf(key, b"heliosfl-internal|key-wrap"))

    @property
    def key_id(self) -> str:
        """First 8 hex digits of SHA-256 of the key: names the key without revealing it."""
        return hashlib.sha256(self._key).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(key_id={self.key_id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyEncryptionKey):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __reduce__(self) -> NoReturn:
        raise ComplianceError(
            f"A KeyEncryptionKey ({self.key_id}) cannot be pickled: it would leave the process "
            "that holds it. Pass its file path or environment variable name instead."
        )

    def __copy__(self) -> KeyEncryptionKey:
        return self

    def __deepcopy__(self, memo: object) -> KeyEncryptionKey:
        return self

    # -- factories ----------------------------------------------------------------------

    @classmethod
    def ephemeral(cls) -> KeyEncryptionKey:
        """A random key held in memory only: what it wraps is lost with this process."""
        return cls(os.urandom(KEY_BYTES))

    @staticmethod
    def new_salt() -> bytes:
        """16 random bytes for :meth:`from_passphrase`; store them (they are not secret)."""
        return os.urandom(_MIN_SALT_BYTES)

    @classmethod
    def from_passphrase(
        cls, passphrase: str, salt: bytes, *, cost: int = SCRYPT_COST
    ) -> KeyEncryptionKey:
        """Derive the key with scrypt (N=`cost`, r=8, p=1, 32 bytes) from a passphrase.

        Deterministic: the same passphrase (NFC-normalised, UTF-8), salt and cost always give
        the same key. The key is only as strong as the passphrase.

        Parameters
        ----------
        passphrase : str
            At least 12 characters.
        salt : bytes
            At least 16 bytes, unique per deployment (:meth:`new_salt`); not secret.
        cost : int, default 2**15
            scrypt's N: a power of two, at least 2**14 (the floor; 2**15 takes ~32 MiB).

        Raises
        ------
        ConfigError
            If the passphrase is short (its length is reported, never its text), the salt
            short, or the cost not a power of two >= 2**14.

        References
        ----------
        C. Percival and S. Josefsson, "The scrypt Password-Based Key Derivation Function",
        RFC 7914, 2016.
        """
        if not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE_CHARS:
            shown = f"<{len(passphrase)} characters>" if isinstance(passphrase, str) else "<?>"
            raise ConfigError("passphrase", shown, f"a str of >= {MIN_PASSPHRASE_CHARS} chars")
        if not isinstance(salt, bytes) or len(salt) < _MIN_SALT_BYTES:
            raise ConfigError("salt", salt, f"bytes of length >= {_MIN_SALT_BYTES}")
        if type(cost) is not int or cost < SCRYPT_MIN_COST or cost & (cost - 1):
            raise ConfigError("cost", cost, f"a power of two >= {SCRYPT_MIN_COST} (2**14)")
        secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
        return cls(Scrypt(salt=salt, length=KEY_BYTES, n=cost, r=8, p=1).derive(secret))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyEncryptionKey:
        """Read a key file holding 32 raw bytes or 64 hex characters (outer space ignored).

        The file must be a regular file owned by this user (or root) with no group or other
        permission bits (e.g. ``0o600``, ``0o400``), checked on the opened descriptor.

        Raises
        ------
        ComplianceError
            If the file cannot be read, has group/other bits (the message names the path
            and the mode), has another owner, or does not hold a key.
        """
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                info = os.fstat(fd)
                mode = stat.S_IMODE(info.st_mode)
                if not stat.S_ISREG(info.st_mode):
                    _refuse(path, "must be a regular file.")
                if mode & 0o077:
                    _refuse(
                        path,
                        f"must be readable by its owner only (mode 0o600). Found mode {mode:#o}."
                        f" Run `chmod 600 {path}`.",
                    )
                if hasattr(os, "geteuid") and info.st_uid not in (os.geteuid(), 0):
                    _refuse(path, f"must be owned by uid {os.geteuid()}. Found {info.st_uid}.")
                content = os.read(fd, 4 * KEY_BYTES)
            finally:
                os.close(fd)
        except OSError as exc:
            _refuse(path, f"cannot be read: {exc.strerror or exc}.")
        if len(content) == KEY_BYTES:
            return cls(content)
        with contextlib.suppress(ValueError):
            if len(text := content.strip()) == 2 * KEY_BYTES:
                return cls(bytes.fromhex(text.decode("ascii")))
        _refuse(path, f"must hold {KEY_BYTES} raw bytes or 64 hex characters. Found neither.")

    @classmethod
    def create_file(cls, path: str | os.PathLike[str]) -> KeyEncryptionKey:
        """Write a new random key (32 raw bytes) to `path` with mode ``0o600``; return it.

        Atomic and never overwriting: the key is written and fsynced to a temporary file
        opened with ``O_CREAT | O_EXCL`` and mode ``0o600`` beside `path`, then hard-linked
        to `path` (which fails if `path` exists), so `path` holds a whole key or nothing.
        Keep it off the workspace's disk and out of its backups.

        Raises
        ------
        ComplianceError
            If `path` exists (a replaced key orphans all it wraps) or cannot be written.
        """
        path = Path(path)
        if os.path.lexists(path):
            _refuse(path, "already exists; refusing to overwrite it. Use from_file().")
        key = os.urandom(KEY_BYTES)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, 0o600)  # be exact whatever the umask
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(tmp, path)
        except FileExistsError:
            _refuse(path, "already exists; refusing to overwrite it. Use from_file().")
        except OSError as exc:
            _refuse(path, f"cannot be created: {exc.strerror or exc}.")
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        return cls(key)

    @classmethod
    def from_env(cls, var: str = DEFAULT_ENV_VAR) -> KeyEncryptionKey:
        """Read the key from environment variable `var`: hex, or (URL-safe) base64, of 32 bytes.

        Raises ComplianceError if `var` is unset or holds no 32-byte key; the value is never
        shown.
        """
        value, decoded = os.environ.get(var, "").strip(), b""
        with contextlib.suppress(ValueError):  # binascii.Error is a ValueError
            if len(value) == 2 * KEY_BYTES:
                decoded = bytes.fromhex(value)
            else:
                decoded = base64.b64decode(value, altchars=b"-_", validate=True)
        if len(decoded) != KEY_BYTES:
            found = "unset" if not value else f"a value of {len(value)} characters"
            raise ComplianceError(
                f"Environment variable {var} must hold 64 hex digits or base64 of {KEY_BYTES} "
                f"bytes. Found {found}."
            )
        return cls(decoded)

    # -- uses ---------------------------------------------------------------------------

    def derive(self, purpose: str) -> bytes:
        """A 32-byte subkey: HKDF-SHA256(KEK, salt=None, info=b"heliosfl|" + purpose).

        Distinct purposes give independent keys (none equal to the internal wrapping key);
        a purpose gives the same key under the same KEK, another one under a new KEK.
        """
        if not isinstance(purpose, str) or not purpose:
            raise ConfigError("purpose", purpose, "a non-empty str")
        return _hkdf(self._key, b"heliosfl|" + purpose.encode())

    def pseudonym(self, subject_id: str) -> str:
        """Keyed pseudonym: HMAC-SHA256(derive("pseudonym"), subject_id), 32 hex digits.

        Without the KEK it cannot be linked to the subject id or tested against guesses;
        with it anyone can recompute it. It changes with the KEK: for pseudonyms that
        outlive rotation use :meth:`heliosfl.compliance.crypto.PhiVault.pseudonym`.
        """
        if not isinstance(subject_id, str) or not subject_id:
            raise ConfigError("subject_id", f"<{type(subject_id).__name__}>", "a non-empty str")
        mac = hmac.new(self.derive("pseudonym"), subject_id.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:32]

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        r"""Encrypt and authenticate `key` under this KEK, bound to `context`.

        AES-256-GCM under an internal HKDF subkey, a fresh random 96-bit nonce, associated
        data ``b"heliosfl-kek-wrap|v1|" + context``; returns ``b"\x01" + nonce + ciphertext
        + tag``. Secret: `key`. Authenticated: `key` and `context`; `context` is not stored,
        the caller gives it again to :meth:`unwrap`.
        """
        if not isinstance(key, bytes) or not 16 <= len(key) <= 1024:
            raise ConfigError("key", f"<{type(key).__name__}>", "bytes of length 16 to 1024")
        if not isinstance(context, bytes):
            raise ConfigError("context", f"<{type(context).__name__}>", "bytes")
        nonce = os.urandom(_NONCE_BYTES)
        return _WRAP_FORMAT + nonce + self._wrapper.encrypt(nonce, key, _WRAP_AAD + context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Recover a key made by :meth:`wrap` under this KEK with the same `context`.

        Raises ComplianceError if the KEK is another one, `context` differs, or `wrapped`
        was altered; never a raw ``InvalidTag``.
        """
        if not isinstance(context, bytes):
            raise ConfigError("context", f"<{type(context).__name__}>", "bytes")
        if isinstance(wrapped, bytes) and wrapped[:1] == _WRAP_FORMAT:
            nonce, sealed = wrapped[1 : 1 + _NONCE_BYTES], wrapped[1 + _NONCE_BYTES :]
            with contextlib.suppress(InvalidTag, ValueError):
                return self._wrapper.decrypt(nonce, sealed, _WRAP_AAD + context)
        raise ComplianceError(
            f"The wrapped key cannot be unwrapped: wrong key-encryption key (this one is "
            f"{self.key_id}) or tampered wrapped key or context."
        )
