"""The customer keys: wrapped by the master key, erased for good, re-wrapped by a new
master key without a byte of the logs changing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from consumers.privacy.customer_keys import MasterKey
from consumers.privacy.key_store import open_customer_keys
from consumers.privacy.sqlite_customer_keys import SQLiteCustomerKeys
from consumers.errors import ConfigurationError
from consumers.settings import Settings
from tests.cli import lifecycle
from tests.test_erasure import SECRETS, WHO, _zelda


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_destroyed_key_is_gone_from_the_file(tmp_path):
    master = MasterKey.load(tmp_path / "master.key", create=True)
    with SQLiteCustomerKeys(tmp_path / "keys.sqlite", master) as keys:
        made = keys.keys_or_new(["a", "b"])
        assert keys.keys_or_new(["a"]) == {"a": made["a"]}, "a customer keeps their key"
        [wrapped] = [w for customer, w in keys.wrapped_keys() if customer == "a"]
        keys.destroy(["a"])
        assert keys.key("a") is None and keys.key("b") == made["b"]
    assert wrapped not in (tmp_path / "keys.sqlite").read_bytes(), "secure_delete overwrites the deleted key"
    with SQLiteCustomerKeys(tmp_path / "keys.sqlite", master) as keys:
        assert keys.key("a") is None and keys.keys_or_new(["a"])["a"] != made["a"], "a new life, a new key"


def test_rotating_the_master_key_rewraps_the_keys_and_changes_no_log(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")
    assert lifecycle(settings, "publish", str(_zelda(tmp_path))) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    log = settings.home / "customer-events.sqlite"
    before, old = _digest(log), MasterKey.load(settings.master_key_path)
    with open_customer_keys(settings) as keys:
        held = {customer: keys.key(customer) for customer, _ in keys.wrapped_keys()}

    capsys.readouterr()
    assert lifecycle(settings, "rotate-master-key", str(tmp_path / "new.key")) == 0
    assert f"re-wrapped {len(held):,} customer keys" in capsys.readouterr().err
    assert not (tmp_path / "new.key").exists(), "the home's default key file was replaced by the new one"
    new = MasterKey.load(settings.master_key_path)
    assert new.fingerprint != old.fingerprint
    with open_customer_keys(settings) as keys:
        assert {customer: keys.key(customer) for customer, _ in keys.wrapped_keys()} == held, "the same keys"
        for customer, wrapped in keys.wrapped_keys():
            with pytest.raises(ValueError):
                old.unwrap(customer, wrapped)
    with pytest.raises(ConfigurationError, match="wrapped by master key"), \
            SQLiteCustomerKeys(settings.home / SQLiteCustomerKeys.FILE, old) as keys:
        keys.key(WHO)
    assert _digest(log) == before, "nothing on the log is encrypted again"

    capsys.readouterr()
    assert lifecycle(settings, "explain", WHO, "--show-personal", "--role", "privacy", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["profile"]["email"] == SECRETS["email"]


def test_the_longest_personal_value_seals_within_the_contract_and_opens_again():
    from consumers.privacy.personal_data import open_fields, seal
    from schemas import decode_event, encode_event

    key = b"k" * 32
    contact = decode_event(json.dumps({
        "type": "contact", "event_id": "00000000-0000-4000-8000-000000000001", "occurred_at": "2025-01-01T00:00:00Z",
        "source": "crm", "customer_id": "c", "channel": "chat", "direction": "inbound", "topic": "\U0001F600" * 2000}))
    sealed = decode_event(encode_event(seal(contact, key)))
    assert sealed.topic is None and sealed.sealed is not None
    assert open_fields("c", sealed.sealed, key) == {"topic": contact.topic}
    assert open_fields("d", sealed.sealed, key) == {"topic": None}, "bound to its customer"


def test_an_erasure_another_producer_wrote_destroys_the_key_when_the_engine_takes_it(tmp_path):
    from consumers.logs.event_log import CUSTOMER_EVENTS
    from consumers.logs import open_event_log
    from consumers.publisher import publish_lines

    settings = Settings(home=tmp_path / "home")
    assert lifecycle(settings, "publish", str(_zelda(tmp_path))) == 0
    with open_customer_keys(settings) as keys:
        assert keys.key(WHO) is not None
    erase = json.dumps({"type": "customer_erased", "event_id": "00000000-0000-4000-8000-00000000e0fe",
                        "occurred_at": "2025-03-09T10:00:00Z", "source": "crm", "customer_id": WHO}).encode()
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines([erase], log, lambda n, why: None)  # not through `lifecycle publish`
    with open_customer_keys(settings) as keys:
        assert keys.key(WHO) is not None
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    with open_customer_keys(settings) as keys:
        assert keys.key(WHO) is None and keys.wrapped_keys(), "only the erased customer's key goes"
