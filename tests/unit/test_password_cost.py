"""The product's password hashes keep their argon2id cost; the rest of the suite hashes at the
cheapest cost (tests/conftest.py), so this is where that cost is proven."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from invite_desk.services import auth, demo
from invite_desk.services.sync import replica
from tests.conftest import FAST_HASHER

pytestmark = pytest.mark.real_password_hash


def _cost(encoded: str) -> tuple[str, int, int, int]:
    match = re.match(r"^\$(argon2id)\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", encoded)
    assert match, encoded
    kind, memory, passes, lanes = match.groups()
    return kind, int(memory), int(passes), int(lanes)


def test_operator_passwords_are_hashed_at_the_products_argon2id_cost() -> None:
    assert auth._hasher is not FAST_HASHER
    encoded = auth.hash_password("correct horse battery")
    kind, memory, passes, lanes = _cost(encoded)
    assert kind == "argon2id"
    assert memory >= 65536 and passes >= 3 and lanes >= 1  # 64 MiB, 3 passes (RFC 9106)
    assert PasswordHasher().verify(encoded, "correct horse battery")
    # The hash that unknown addresses are checked against costs as much as a real one, so
    # "no such operator" answers as slowly as "wrong password".
    assert _cost(auth._DUMMY_HASH) == _cost(encoded)
    assert replica._DUMMY_HASH == auth._DUMMY_HASH


def test_the_demo_hashes_at_the_same_cost() -> None:
    assert demo._hasher is not FAST_HASHER
    assert _cost(demo._hasher.hash("demo-password")) == _cost(auth.hash_password("x" * 12))


def test_other_tests_hash_cheaply_but_still_with_argon2id() -> None:
    """The cheap hasher is real argon2id: its hashes verify with the product's hasher and
    the product's hashes verify with it (the cost is read from the hash)."""
    cheap = FAST_HASHER.hash("correct horse battery")
    assert _cost(cheap)[0] == "argon2id"
    assert PasswordHasher().verify(cheap, "correct horse battery")
    assert FAST_HASHER.verify(auth.hash_password("correct horse battery"),
                              "correct horse battery")
