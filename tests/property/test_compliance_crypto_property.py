"""Invariants of the PHI vault and key wrapping, over arbitrary data, ids and tampering."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from heliosfl.compliance.crypto import EncryptedPhi, PhiVault
from heliosfl.compliance.keys import KeyEncryptionKey
from heliosfl.errors import ComplianceError
from heliosfl.store import Workspace

KEK = KeyEncryptionKey(bytes(range(32)))
WORKSPACE = Workspace()
VAULT = PhiVault(WORKSPACE, KEK)

printable = st.characters(blacklist_categories=("C", "Z"))
record_ids = st.text(printable, min_size=1, max_size=40)
subjects = st.none() | st.text(printable, max_size=20).map(lambda s: "subject:" + s)


def _fails(record: EncryptedPhi) -> bool:
    try:
        VAULT.decrypt(record)
    except ComplianceError:
        return True
    return False


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2048), record_id=record_ids, subject_id=subjects)
def test_round_trip_and_any_bit_flip_fails(
    data: bytes, record_id: str, subject_id: str | None
) -> None:
    record_id = f"{subject_id}|{record_id}"  # a subject never changes for a record id
    record = VAULT.encrypt(data, record_id, subject_id=subject_id)
    assert VAULT.decrypt(record) == data and VAULT.decrypt(record_id) == data
    for field in ("nonce", "ciphertext"):
        blob = getattr(record, field)
        for index in {0, len(blob) // 2, len(blob) - 1}:
            flipped = bytearray(blob)
            flipped[index] ^= 1 << (index % 8)
            assert _fails(replace(record, **{field: bytes(flipped)}))


@settings(max_examples=100, deadline=None)
@given(first=record_ids, second=record_ids, data=st.binary(max_size=64))
def test_ciphertext_never_opens_under_another_record_id(
    first: str, second: str, data: bytes
) -> None:
    first, second = "a:" + first, "b:" + second
    one = VAULT.encrypt(data, first)
    VAULT.encrypt(data, second)
    assert _fails(replace(one, record_id=second))


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=16, max_size=64), context=st.binary(), other=st.binary())
def test_wrap_round_trips_and_binds_context(key: bytes, context: bytes, other: bytes) -> None:
    wrapped = KEK.wrap(key, context=context)
    assert KEK.unwrap(wrapped, context=context) == key
    if other != context:
        try:
            KEK.unwrap(wrapped, context=other)
        except ComplianceError:
            pass
        else:
            raise AssertionError("unwrapped under the wrong context")
