"""The key-encryption key and the PHI vault: envelope encryption, rotation, shredding.

Imported by full module path: ``heliosfl.compliance`` may have no ``__init__`` yet.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import pickle
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from heliosfl.compliance.crypto import EncryptedPhi, PhiVault
from heliosfl.compliance.keys import (
    SCRYPT_MIN_COST,
    KeyEncryptionKey,
    check_key_size,
)
from heliosfl.errors import ComplianceError, ConfigError
from heliosfl.store import Workspace

SENTINEL = b"SENTINEL-PHI-123-45-6789"
SUBJECT = "SENTINEL-SUBJECT-123-45-6789"
PASSPHRASE = "correct horse battery staple"  # noqa: S105 (a test passphrase)
SALT = b"0123456789abcdef"


@pytest.fixture
def kek() -> KeyEncryptionKey:
    return KeyEncryptionKey.ephemeral()


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    with Workspace() as ws:
        yield ws


@pytest.fixture
def vault(workspace: Workspace, kek: KeyEncryptionKey) -> PhiVault:
    return PhiVault(workspace, kek)


def row(ws: Workspace, sql: str, *args: object) -> tuple[object, ...]:
    with ws.reading() as conn:
        found = conn.execute(sql, args).fetchone()
    assert found is not None
    return tuple(found)


def tamper(ws: Workspace, sql: str, *args: object) -> None:
    with ws.transaction() as conn:
        assert conn.execute(sql, args).rowcount >= 1


def clean(text: str) -> None:
    """Assert that neither the PHI sentinel nor the subject id appears in `text`."""
    for secret in (SENTINEL.decode(), SUBJECT):
        assert secret not in text
        assert secret.encode().hex() not in text.lower()


# -- KeyEncryptionKey -------------------------------------------------------------------


def test_key_id_is_sha256_prefix_and_repr_shows_only_it() -> None:
    raw = bytes(range(32))
    key = KeyEncryptionKey(raw)
    assert key.key_id == hashlib.sha256(raw).hexdigest()[:8]
    assert repr(key) == f"KeyEncryptionKey(key_id={key.key_id!r})"
    assert raw.hex() not in repr(key) and repr(raw) not in str(key)


@pytest.mark.parametrize("raw", [b"short", b"x" * 33, "a" * 32, None])
def test_key_must_be_32_bytes_and_message_hides_it(raw: object) -> None:
    with pytest.raises(ConfigError, match="exactly 32 bytes") as info:
        KeyEncryptionKey(raw)  # type: ignore[arg-type]
    assert "x" * 33 not in str(info.value)


def test_keys_compare_by_value_cannot_be_pickled_and_copy_to_themselves() -> None:
    a, b = KeyEncryptionKey(b"k" * 32), KeyEncryptionKey(b"k" * 32)
    assert a == b and hash(a) == hash(b) and a != KeyEncryptionKey.ephemeral()
    with pytest.raises(ComplianceError, match="cannot be pickled"):
        pickle.dumps(a)
    assert copy.copy(a) is a and copy.deepcopy(a) is a


def test_passphrase_derivation_is_deterministic_with_salt() -> None:
    one = KeyEncryptionKey.from_passphrase(PASSPHRASE, SALT, cost=SCRYPT_MIN_COST)
    two = KeyEncryptionKey.from_passphrase(PASSPHRASE, SALT, cost=SCRYPT_MIN_COST)
    other_salt = KeyEncryptionKey.from_passphrase(PASSPHRASE, b"f" * 16, cost=SCRYPT_MIN_COST)
    other_text = KeyEncryptionKey.from_passphrase(PASSPHRASE + "!", SALT, cost=SCRYPT_MIN_COST)
    assert one == two
    assert one != other_salt and one != other_text
    assert len(KeyEncryptionKey.new_salt()) == 16


def test_passphrase_is_nfc_normalised() -> None:
    composed, decomposed = "caf\u00e9 passphrase!", "cafe\u0301 passphrase!"
    assert KeyEncryptionKey.from_passphrase(
        composed, SALT, cost=SCRYPT_MIN_COST
    ) == KeyEncryptionKey.from_passphrase(decomposed, SALT, cost=SCRYPT_MIN_COST)


def test_short_passphrase_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="passphrase must be a str of >= 12") as info:
        KeyEncryptionKey.from_passphrase("hunter2-abc", SALT, cost=SCRYPT_MIN_COST)
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value.value)


@pytest.mark.parametrize(
    ("salt", "cost", "field"),
    [(b"short", SCRYPT_MIN_COST, "salt"), (SALT, 2**13, "cost"), (SALT, 3 * 2**14, "cost")],
)
def test_weak_salt_or_cost_refused(salt: bytes, cost: int, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field} must be"):
        KeyEncryptionKey.from_passphrase(PASSPHRASE, salt, cost=cost)


def test_create_file_writes_owner_only_key_and_from_file_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "kek.bin"
    created = KeyEncryptionKey.create_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() != b"" and len(path.read_bytes()) == 32
    assert KeyEncryptionKey.from_file(path) == created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kek.bin"]  # no temporary left


def test_create_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "kek.bin"
    KeyEncryptionKey.create_file(path)
    before = path.read_bytes()
    with pytest.raises(ComplianceError, match="already exists; refusing to overwrite"):
        KeyEncryptionKey.create_file(path)
    assert path.read_bytes() == before


def test_create_file_in_missing_directory_is_a_compliance_error(tmp_path: Path) -> None:
    with pytest.raises(ComplianceError, match="cannot be created"):
        KeyEncryptionKey.create_file(tmp_path / "missing" / "kek.bin")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek.bin"
    KeyEncryptionKey.create_file(path)
    path.chmod(mode)
    with pytest.raises(ComplianceError) as info:
        KeyEncryptionKey.from_file(path)
    assert str(path) in str(info.value) and f"{mode:#o}" in str(info.value)


def test_key_file_may_hold_hex_but_nothing_else(tmp_path: Path) -> None:
    raw = os.urandom(32)
    path = tmp_path / "kek.hex"
    path.write_text(raw.hex() + "\n")
    path.chmod(0o400)
    assert KeyEncryptionKey.from_file(path) == KeyEncryptionKey(raw)
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a key at all")
    bad.chmod(0o600)
    with pytest.raises(ComplianceError, match="must hold 32 raw bytes or 64 hex"):
        KeyEncryptionKey.from_file(bad)
    with pytest.raises(ComplianceError, match="cannot be read"):
        KeyEncryptionKey.from_file(tmp_path / "missing")
    with pytest.raises(ComplianceError, match="regular file"):
        (tmp_path / "dir").mkdir(mode=0o700)
        KeyEncryptionKey.from_file(tmp_path / "dir")


def test_from_env_accepts_hex_and_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = os.urandom(32)
    for encoded in (raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw)):
        monkeypatch.setenv(
            "HELIOSFL_KEK", encoded if isinstance(encoded, str) else encoded.decode()
        )
        assert KeyEncryptionKey.from_env() == KeyEncryptionKey(raw)
    monkeypatch.setenv("OTHER_KEK", raw.hex())
    assert KeyEncryptionKey.from_env("OTHER_KEK") == KeyEncryptionKey(raw)


def test_from_env_refuses_unset_or_wrong_values_without_echoing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HELIOSFL_KEK", raising=False)
    with pytest.raises(ComplianceError, match=r"HELIOSFL_KEK must hold .* Found unset"):
        KeyEncryptionKey.from_env()
    for value in ("SENTINEL-PHI-123-45-6789", base64.b64encode(b"x" * 16).decode(), "zz" * 32):
        monkeypatch.setenv("HELIOSFL_KEK", value)
        with pytest.raises(ComplianceError) as info:
            KeyEncryptionKey.from_env()
        assert value not in str(info.value)


def test_derive_gives_independent_deterministic_subkeys(kek: KeyEncryptionKey) -> None:
    audit, pseudo = kek.derive("audit-log-hmac"), kek.derive("pseudonym")
    assert len(audit) == 32 and audit == kek.derive("audit-log-hmac") and audit != pseudo
    assert audit != KeyEncryptionKey.ephemeral().derive("audit-log-hmac")
    with pytest.raises(ConfigError, match="purpose must be a non-empty str"):
        kek.derive("")


def test_pseudonym_is_keyed_and_hides_the_subject(kek: KeyEncryptionKey) -> None:
    name = kek.pseudonym(SUBJECT)
    assert len(name) == 32 and int(name, 16) >= 0 and name == kek.pseudonym(SUBJECT)
    assert name != kek.pseudonym(SUBJECT + "x")
    assert name != KeyEncryptionKey.ephemeral().pseudonym(SUBJECT)
    clean(name)


def test_wrap_round_trips_and_binds_key_and_context(kek: KeyEncryptionKey) -> None:
    secret = os.urandom(32)
    wrapped = kek.wrap(secret, context=b"ctx")
    assert kek.unwrap(wrapped, context=b"ctx") == secret
    assert kek.wrap(secret, context=b"ctx") != wrapped  # fresh nonce
    flipped = bytes([wrapped[0]]) + bytes([wrapped[1] ^ 1]) + wrapped[2:]
    for bad_kek, blob, context in [
        (kek, wrapped, b"other"),
        (KeyEncryptionKey.ephemeral(), wrapped, b"ctx"),
        (kek, flipped, b"ctx"),
        (kek, wrapped[:-1], b"ctx"),
        (kek, b"\x02" + wrapped[1:], b"ctx"),
        (kek, b"", b"ctx"),
    ]:
        with pytest.raises(ComplianceError, match="cannot be unwrapped: wrong key") as info:
            bad_kek.unwrap(blob, context=context)
        assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.mark.parametrize(("bits", "ok"), [(256, True), (128, False), (512, False), (True, False)])
def test_check_key_size(bits: int, ok: bool) -> None:
    if ok:
        assert check_key_size(bits) == bits
    else:
        with pytest.raises(ConfigError, match="min_key_size_bits must be"):
            check_key_size(bits)


# -- PhiVault: round trip ---------------------------------------------------------------


def test_encrypt_decrypt_round_trip(vault: PhiVault, kek: KeyEncryptionKey) -> None:
    record = vault.encrypt(SENTINEL, "rec-1", subject_id=SUBJECT)
    assert isinstance(record, EncryptedPhi)
    assert (record.record_id, record.version, record.key_id) == ("rec-1", 1, kek.key_id)
    assert record.subject == vault.pseudonym(SUBJECT) and len(record.nonce) == 12
    assert SENTINEL not in record.ciphertext
    assert vault.decrypt(record) == SENTINEL
    assert vault.decrypt("rec-1") == SENTINEL
    assert vault.encrypt(bytearray(b""), "empty").version == 1
    assert vault.decrypt("empty") == b""


def test_reencryption_makes_a_new_version(vault: PhiVault) -> None:
    first = vault.encrypt(b"one", "rec", subject_id=SUBJECT)
    second = vault.encrypt(b"two", "rec", subject_id=SUBJECT)
    assert (first.version, second.version) == (1, 2)
    assert vault.decrypt("rec") == b"two" and vault.decrypt(second) == b"two"
    with pytest.raises(ComplianceError, match="copy is version 1"):
        vault.decrypt(first)
    assert vault.records() == ["rec"]


def test_a_record_cannot_change_subject(vault: PhiVault) -> None:
    vault.encrypt(b"x", "rec", subject_id="alice")
    with pytest.raises(ComplianceError, match="belongs to another subject"):
        vault.encrypt(b"y", "rec", subject_id="bob")
    with pytest.raises(ComplianceError, match="belongs to another subject"):
        vault.encrypt(b"y", "rec")


def test_records_lists_by_subject(vault: PhiVault) -> None:
    vault.encrypt(b"a", "a1", subject_id="alice")
    vault.encrypt(b"b", "b1", subject_id="bob")
    vault.encrypt(b"a", "a2", subject_id="alice")
    vault.encrypt(b"n", "n1")
    assert vault.records() == ["a1", "b1", "a2", "n1"]
    assert vault.records("alice") == ["a1", "a2"] and vault.records("carol") == []


@pytest.mark.parametrize(
    ("data", "record_id", "subject_id", "field"),
    [
        ("text", "r", None, "data"),
        (b"x", "", None, "record_id"),
        (b"x", "r" * 201, None, "record_id"),
        (b"x", 7, None, "record_id"),
        (b"x", "r", "", "subject_id"),
        (b"x", "line\nbreak", None, "record_id"),
        (b"x", "\ud800", None, "record_id"),
        (b"x", "r", "tab\there", "subject_id"),
    ],
)
def test_bad_arguments_are_config_errors(
    vault: PhiVault, data: object, record_id: object, subject_id: object, field: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{field} must be"):
        vault.encrypt(data, record_id, subject_id=subject_id)  # type: ignore[arg-type]


def test_unknown_record_is_a_compliance_error(vault: PhiVault) -> None:
    with pytest.raises(ComplianceError, match="The record is not in this PHI vault"):
        vault.decrypt("nope")


def test_nonces_and_data_keys_are_fresh_for_every_encryption(vault: PhiVault) -> None:
    records = [vault.encrypt(SENTINEL, f"r{i % 500}") for i in range(1000)]
    assert len({r.nonce for r in records}) == 1000
    assert len({r.ciphertext for r in records}) == 1000
    with vault._ws.reading() as conn:
        deks = [r[0] for r in conn.execute("SELECT wrapped_dek FROM phi_records")]
    assert len(set(deks)) == 500


def test_vault_persists_across_reopen(tmp_path: Path) -> None:
    key_path, db = tmp_path / "keys" / "kek.bin", tmp_path / "ws.sqlite"
    key_path.parent.mkdir()
    with Workspace(db) as ws:
        PhiVault(ws, KeyEncryptionKey.create_file(key_path)).encrypt(SENTINEL, "r", subject_id="s")
    with Workspace(db) as ws:
        vault = PhiVault(ws, KeyEncryptionKey.from_file(key_path))
        assert vault.decrypt("r") == SENTINEL and vault.records("s") == ["r"]


# -- PhiVault: tampering ----------------------------------------------------------------


def test_flipped_ciphertext_or_nonce_byte_fails(vault: PhiVault) -> None:
    record = vault.encrypt(SENTINEL, "rec", subject_id=SUBJECT)
    for i in (0, len(record.ciphertext) // 2, len(record.ciphertext) - 1):
        ciphertext = bytearray(record.ciphertext)
        ciphertext[i] ^= 0x01
        with pytest.raises(ComplianceError, match="ciphertext, nonce, record id") as info:
            vault.decrypt(EncryptedPhi(**{**_fields(record), "ciphertext": bytes(ciphertext)}))
        assert info.value.__cause__ is None
    nonce = bytes([record.nonce[0] ^ 1]) + record.nonce[1:]
    for bad in (nonce, record.nonce[:11], record.nonce + b"\x00"):
        with pytest.raises(ComplianceError, match="cannot be decrypted"):
            vault.decrypt(EncryptedPhi(**{**_fields(record), "nonce": bad}))
    # The same bytes re-split across the nonce/ciphertext boundary are refused too.
    resplit = {"nonce": record.nonce[:11], "ciphertext": record.nonce[11:] + record.ciphertext}
    with pytest.raises(ComplianceError, match="cannot be decrypted"):
        vault.decrypt(EncryptedPhi(**{**_fields(record), **resplit}))


def test_flipped_stored_byte_fails(vault: PhiVault) -> None:
    vault.encrypt(SENTINEL, "rec", subject_id=SUBJECT)
    for column in ("ciphertext", "nonce", "wrapped_dek"):
        (blob,) = row(vault._ws, f"SELECT {column} FROM phi_records")  # noqa: S608
        assert isinstance(blob, bytes)
        flipped = blob[:-1] + bytes([blob[-1] ^ 0x80])
        tamper(vault._ws, f"UPDATE phi_records SET {column} = ?", flipped)  # noqa: S608
        with pytest.raises(ComplianceError, match="cannot be decrypted"):
            vault.decrypt("rec")
        tamper(vault._ws, f"UPDATE phi_records SET {column} = ?", blob)  # noqa: S608
    assert vault.decrypt("rec") == SENTINEL


def test_ciphertext_moved_to_another_record_fails(vault: PhiVault) -> None:
    a = vault.encrypt(b"alice's data", "a", subject_id="same")
    b = vault.encrypt(b"bob's data", "b", subject_id="same")
    with pytest.raises(ComplianceError, match="cannot be decrypted"):
        vault.decrypt(EncryptedPhi(**{**_fields(a), "record_id": "b"}))
    # Swap the rows' ciphertexts and nonces in the store (same subject key).
    tamper(
        vault._ws,
        "UPDATE phi_records SET nonce = ?, ciphertext = ? WHERE record_id = 'b'",
        a.nonce,
        a.ciphertext,
    )
    with pytest.raises(ComplianceError, match="cannot be decrypted"):
        vault.decrypt("b")
    # Swap the wrapped data keys too: the wrapped key is bound to its record.
    (dek_a,) = row(vault._ws, "SELECT wrapped_dek FROM phi_records WHERE record_id = 'a'")
    tamper(vault._ws, "UPDATE phi_records SET wrapped_dek = ? WHERE record_id = 'b'", dek_a)
    with pytest.raises(ComplianceError, match="wrapped data key was altered"):
        vault.decrypt("b")
    assert vault.decrypt(a) == b"alice's data" and b.record_id == "b"


def test_changed_version_or_subject_fails(vault: PhiVault) -> None:
    vault.encrypt(b"v1", "rec", subject_id=SUBJECT)
    record = vault.encrypt(b"v2", "rec", subject_id=SUBJECT)
    with pytest.raises(ComplianceError, match="cannot be decrypted"):
        vault.decrypt(EncryptedPhi(**{**_fields(record), "subject": "0" * 32}))
    tamper(vault._ws, "UPDATE phi_records SET version = 1")
    with pytest.raises(ComplianceError, match="cannot be decrypted"):
        vault.decrypt("rec")


def test_a_missing_subject_key_is_reported_and_never_recreated_on_read(vault: PhiVault) -> None:
    vault.encrypt(b"x", "rec", subject_id=SUBJECT)
    tamper(vault._ws, "DELETE FROM phi_subject_keys")
    with pytest.raises(ComplianceError, match="The record has no subject key"):
        vault.decrypt("rec")
    assert _all(vault._ws, "SELECT * FROM phi_subject_keys") == []


def test_subject_keys_swapped_between_subjects_fail(vault: PhiVault) -> None:
    vault.encrypt(b"a", "a", subject_id="alice")
    vault.encrypt(b"b", "b", subject_id="bob")
    alice, bob = vault.pseudonym("alice"), vault.pseudonym("bob")
    (wrapped_bob,) = row(vault._ws, "SELECT wrapped FROM phi_subject_keys WHERE subject = ?", bob)
    tamper(
        vault._ws, "UPDATE phi_subject_keys SET wrapped = ? WHERE subject = ?", wrapped_bob, alice
    )
    with pytest.raises(ComplianceError, match="cannot be unwrapped"):
        vault.decrypt("a")


def test_wrong_kek_is_refused_naming_both_key_ids(workspace: Workspace, vault: PhiVault) -> None:
    vault.encrypt(SENTINEL, "rec", subject_id=SUBJECT)
    wrong = KeyEncryptionKey.ephemeral()
    with pytest.raises(ComplianceError) as info:
        PhiVault(workspace, wrong)
    assert vault.key_id in str(info.value) and wrong.key_id in str(info.value)
    # Even with the key id row forged, the wrapped keys do not open.
    tamper(workspace, "UPDATE phi_vault_keys SET key_id = ?", wrong.key_id)
    with pytest.raises(ComplianceError, match="cannot be unwrapped: wrong key-encryption key"):
        PhiVault(workspace, wrong)


# -- PhiVault: rotation -----------------------------------------------------------------


def _fields(record: EncryptedPhi) -> dict[str, object]:
    return {name: getattr(record, name) for name in EncryptedPhi.__dataclass_fields__}


def _record_rows(ws: Workspace) -> list[tuple[object, ...]]:
    with ws.reading() as conn:
        return [tuple(r) for r in conn.execute("SELECT * FROM phi_records ORDER BY record_id")]


def test_rotation_rewraps_keys_and_changes_no_record(workspace: Workspace, vault: PhiVault) -> None:
    old = vault._kek
    for i in range(10):
        vault.encrypt(SENTINEL + bytes([i]), f"r{i}", subject_id=f"s{i % 3}")
    vault.encrypt(b"alone", "solo")
    before = _record_rows(workspace)
    (wrapped_before,) = row(workspace, "SELECT wrapped FROM phi_subject_keys LIMIT 1")
    new = KeyEncryptionKey.ephemeral()
    assert vault.rotate(new) == 4  # three named subjects and one per-record subject
    assert vault.key_id == new.key_id
    assert _record_rows(workspace) == before
    assert row(workspace, "SELECT wrapped FROM phi_subject_keys LIMIT 1")[0] != wrapped_before
    assert {r[0] for r in _all(workspace, "SELECT key_id FROM phi_subject_keys")} == {new.key_id}
    assert [vault.decrypt(f"r{i}") for i in range(10)] == [SENTINEL + bytes([i]) for i in range(10)]
    assert vault.records("s1") == ["r1", "r4", "r7"]  # pseudonyms survive rotation
    assert PhiVault(workspace, new).decrypt("solo") == b"alone"
    with pytest.raises(ComplianceError, match=f"wrapped under key-encryption key {new.key_id}"):
        PhiVault(workspace, old)


def _all(ws: Workspace, sql: str) -> list[tuple[object, ...]]:
    with ws.reading() as conn:
        return [tuple(r) for r in conn.execute(sql)]


def test_rotation_to_the_same_key_or_nothing_is_refused(vault: PhiVault) -> None:
    with pytest.raises(ConfigError, match="new_kek must be a key-encryption key other"):
        vault.rotate(vault._kek)
    with pytest.raises(ConfigError, match="new_kek must be a KeyEncryptionKey"):
        vault.rotate(None)  # type: ignore[arg-type]


def test_failed_rotation_changes_nothing(workspace: Workspace, vault: PhiVault) -> None:
    vault.encrypt(b"a", "a", subject_id="alice")
    vault.encrypt(b"b", "b", subject_id="bob")
    tamper(
        workspace,
        "UPDATE phi_subject_keys SET wrapped = x'00' WHERE subject = ?",
        vault.pseudonym("bob"),
    )
    keys_before = _all(workspace, "SELECT * FROM phi_subject_keys ORDER BY subject")
    old_id = vault.key_id
    with pytest.raises(ComplianceError, match="cannot be unwrapped"):
        vault.rotate(KeyEncryptionKey.ephemeral())
    assert vault.key_id == old_id
    assert _all(workspace, "SELECT * FROM phi_subject_keys ORDER BY subject") == keys_before
    assert vault.decrypt("a") == b"a"


def test_a_stale_vault_is_refused_after_another_rotates(workspace: Workspace) -> None:
    kek = KeyEncryptionKey.ephemeral()
    first, second = PhiVault(workspace, kek), PhiVault(workspace, kek)
    first.encrypt(b"x", "rec")
    first.rotate(KeyEncryptionKey.ephemeral())
    with pytest.raises(ComplianceError, match="wrapped under key-encryption key"):
        second.encrypt(b"y", "other")
    with pytest.raises(ComplianceError, match="wrapped under key-encryption key"):
        second.decrypt("rec")


# -- PhiVault: crypto-shredding ---------------------------------------------------------


def test_shred_makes_every_record_of_the_subject_unreadable(
    workspace: Workspace, vault: PhiVault
) -> None:
    exported = [vault.encrypt(SENTINEL, f"s{i}", subject_id=SUBJECT) for i in range(3)]
    vault.encrypt(b"other", "o", subject_id="someone else")
    assert vault.shred(SUBJECT) == 3
    for record in (*exported, "s0", "s1"):
        with pytest.raises(ComplianceError, match="was crypto-shredded") as info:
            vault.decrypt(record)
        clean(str(info.value))
    assert vault.decrypt("o") == b"other"
    assert vault.records(SUBJECT) == [] and vault.records() == ["o"]
    assert vault.shred(SUBJECT) == 0  # idempotent
    subject = vault.pseudonym(SUBJECT)
    (wrapped,) = row(workspace, "SELECT wrapped FROM phi_subject_keys WHERE subject = ?", subject)
    assert isinstance(wrapped, bytes) and set(wrapped) == {0}
    for nonce, ciphertext, dek in _all(
        workspace, "SELECT nonce, ciphertext, wrapped_dek FROM phi_records WHERE shredded_at"
    ):
        assert {*nonce, *ciphertext, *dek} == {0}  # type: ignore[misc]
    with pytest.raises(ComplianceError, match="was crypto-shredded"):
        vault.encrypt(SENTINEL, "new", subject_id=SUBJECT)
    with pytest.raises(ComplianceError, match="was crypto-shredded"):
        vault.encrypt(SENTINEL, "s0", subject_id=SUBJECT)


def test_shredding_an_unknown_subject_blocks_later_data(vault: PhiVault) -> None:
    assert vault.shred("never-seen") == 0
    with pytest.raises(ComplianceError, match="was crypto-shredded"):
        vault.encrypt(b"x", "r", subject_id="never-seen")


def test_shred_record_alone(vault: PhiVault) -> None:
    vault.encrypt(b"solo", "solo")
    vault.encrypt(b"a1", "a1", subject_id="alice")
    vault.encrypt(b"a2", "a2", subject_id="alice")
    assert vault.shred_record("solo") == 1
    assert vault.shred_record("a1") == 1
    for record_id in ("solo", "a1"):
        with pytest.raises(ComplianceError, match="was crypto-shredded"):
            vault.decrypt(record_id)
    assert vault.decrypt("a2") == b"a2" and vault.records() == ["a2"]
    with pytest.raises(ComplianceError, match="not in this PHI vault"):
        vault.shred_record("missing")


def _backup(ws: Workspace, to: Path) -> None:
    """A hot copy of the workspace file, as a backup job would take it."""
    with ws.reading() as conn, sqlite3.connect(to) as target:
        conn.backup(target)
    target.close()


def test_backup_before_shred_keeps_the_wrapped_key_unless_the_kek_is_rotated(
    tmp_path: Path,
) -> None:
    old = KeyEncryptionKey.ephemeral()
    with Workspace(tmp_path / "ws.sqlite") as ws:
        vault = PhiVault(ws, old)
        exported = vault.encrypt(SENTINEL, "rec", subject_id=SUBJECT)
        vault.encrypt(b"kept", "kept", subject_id="other")
        _backup(ws, tmp_path / "backup.sqlite")
        new = KeyEncryptionKey.ephemeral()
        assert vault.shred(SUBJECT, rotate_to=new) == 1
        assert vault.key_id == new.key_id and vault.decrypt("kept") == b"kept"
        with pytest.raises(ComplianceError, match="was crypto-shredded"):
            vault.decrypt(exported)
    with Workspace(tmp_path / "backup.sqlite") as backup:
        # The backup still holds the subject's wrapped key: the new KEK cannot open it...
        with pytest.raises(ComplianceError, match="wrapped under key-encryption key"):
            PhiVault(backup, new)
        subject_row = row(backup, "SELECT subject, wrapped FROM phi_subject_keys")
        with pytest.raises(ComplianceError, match="cannot be unwrapped"):
            new.unwrap(
                subject_row[1],  # type: ignore[arg-type]
                context=b"heliosfl-phi|subject|" + str(subject_row[0]).encode(),
            )
        # ...and only the old KEK, which must be destroyed, still can (the documented caveat).
        assert PhiVault(backup, old).decrypt("rec") == SENTINEL


def test_shred_with_rotation_to_the_same_key_is_refused_before_shredding(vault: PhiVault) -> None:
    vault.encrypt(b"x", "r", subject_id="s")
    with pytest.raises(ConfigError, match=r"^rotate_to must be a key-encryption key other"):
        vault.shred("s", rotate_to=vault._kek)
    assert vault.decrypt("r") == b"x"


# -- nothing secret in messages, reprs or the store ----------------------------------------


def test_no_phi_in_reprs_messages_or_the_database(workspace: Workspace, vault: PhiVault) -> None:
    record = vault.encrypt(SENTINEL, "rec", subject_id=SUBJECT)
    texts = [repr(record), str(record), repr(vault), repr(vault._kek), repr(workspace)]
    errors: list[Exception] = []
    for attempt in (
        lambda: vault.decrypt(EncryptedPhi(**{**_fields(record), "ciphertext": b"x" * 40})),
        lambda: vault.encrypt(SENTINEL.decode(), "rec2"),  # type: ignore[arg-type]
        lambda: vault.encrypt(SENTINEL, "rec", subject_id=SUBJECT + "-other"),
        lambda: PhiVault(workspace, KeyEncryptionKey.ephemeral()),
        lambda: vault.shred(SUBJECT) and vault.decrypt("rec"),
        lambda: vault.encrypt(SENTINEL, "rec", subject_id=SUBJECT),
    ):
        with pytest.raises((ComplianceError, ConfigError)) as info:
            attempt()
        errors.append(info.value)
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [repr(pickle.loads(pickle.dumps(e))) for e in errors]  # noqa: S301
    with workspace.reading() as conn:
        texts.append("\n".join(conn.iterdump()))
    for text in texts:
        clean(text)
