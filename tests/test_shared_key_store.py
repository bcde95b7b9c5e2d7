"""The key store several publishing machines share (PostgreSQL): publishers of one Kafka
cluster seal a customer's data under one key, and one erasure erases it for all of them,
on every machine, whatever a publisher still held in memory."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from consumers.errors import ConfigurationError
from consumers.privacy.customer_keys import MasterKey
from consumers.privacy.key_store import open_customer_keys
from consumers.privacy.personal_data import open_value
from consumers.settings import Settings
from tests.cli import lifecycle
from tests.test_erasure import SECRETS, WHO, _everywhere, _lines, _sealed_values, _zelda

ERASE = {"type": "customer_erased", "event_id": "00000000-0000-4000-8000-00000000e0ff",
         "occurred_at": "2025-03-09T10:00:00Z", "source": "privacy", "customer_id": WHO}
MOVED = {"type": "profile_updated", "event_id": "00000000-0000-4000-8000-00000000e011",
         "occurred_at": "2025-03-05T10:00:00Z", "source": "shop", "customer_id": WHO, "city": "York",
         "email": SECRETS["email"]}


def _machines(tmp_path: Path, broker: object, key_store: str) -> tuple[Settings, Settings, Settings]:
    """Two publishing machines and the engine's, each with a home of its own; the
    publishers hold copies of one master key, the engine none."""
    master = tmp_path / "master.key"
    MasterKey.load(master, create=True)
    machines = []
    for name in ("publisher-a", "publisher-b", "engine"):
        home = tmp_path / name
        home.mkdir()
        if name.startswith("publisher"):
            shutil.copy(master, home / "master.key")
        machines.append(Settings(home=home, kafka=broker.bootstrap, partitions=3, key_store=key_store))  # type: ignore[attr-defined]
    return machines[0], machines[1], machines[2]


def test_two_publishers_share_a_customer_key_and_one_erasure_erases_it_for_both(kafka_broker, key_store, tmp_path,
                                                                                capsys):
    a, b, engine = _machines(tmp_path, kafka_broker, key_store)
    assert lifecycle(a, "publish", str(_zelda(tmp_path))) == 0
    assert lifecycle(b, "publish", str(_lines(tmp_path, "moved.jsonl", [MOVED]))) == 0
    with open_customer_keys(b) as keys:
        [(customer, _)] = [row for row in keys.wrapped_keys() if row[0] == WHO]
        key = keys.key(WHO)
        assert key is not None
    sealed = _sealed_values(engine)
    assert len(sealed) == 7, "A's profile (4 fields) and contact, B's two fields"
    assert all(open_value(key, place, value) is not None for place, value in sealed), "one key for both publishers"

    capsys.readouterr()
    assert lifecycle(b, "tail", "customer-events", "--show-personal", "--role", "privacy") == 0
    shown = [line for line in capsys.readouterr().out.splitlines() if WHO in line]
    assert all(any(value in line for line in shown) for value in SECRETS.values()), ("B opens what A sealed", shown)
    assert lifecycle(engine, "process", "--once", "--no-clock") == 0
    held = open_customer_keys(a)
    assert held.key(WHO) == key, "publisher A holds Zelda's key in memory"

    assert lifecycle(b, "publish", str(_lines(tmp_path, "erase.jsonl", [ERASE]))) == 0
    assert lifecycle(engine, "process", "--once", "--no-clock") == 0
    assert held.key(WHO) is None, "the erasure reached A's memory too"
    assert held.keys_or_new([WHO])[WHO] != key, "a profile after the erasure gets a new key"
    held.destroy([WHO])
    held.close()
    assert _everywhere(engine, a.home, b.home) == {}, "every file of the three machines, every record of every topic"
    with open_customer_keys(a) as keys:
        rest = [keys.master.unwrap(c, wrapped) for c, wrapped in keys.wrapped_keys()]
    assert rest, "the other customers keep their keys"
    assert all(open_value(k, place, value) is None for k in rest for place, value in sealed)


def test_publishers_making_the_same_keys_at_once_agree_on_them(key_store, tmp_path):
    settings = Settings(home=tmp_path / "home", key_store=key_store)
    customers = [f"c{n:04}" for n in range(1200)]
    start, made, failed = threading.Barrier(3, timeout=60), [], []

    def publisher(share: list[str]) -> None:
        try:
            with open_customer_keys(settings) as keys:
                start.wait()
                made.append(keys.keys_or_new(share))
        except BaseException as error:
            failed.append(error)
            start.abort()

    threads = [threading.Thread(target=publisher, args=(order,))
               for order in (customers, customers[::-1], customers[300:] + customers[:300])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failed, "three first uses at once, of the master key file and of the database"
    assert len(made) == 3 and made[0] == made[1] == made[2], "the first key stored is everyone's"


def test_rotating_the_master_key_rewraps_the_shared_keys(key_store, tmp_path):
    settings = Settings(home=tmp_path / "home", key_store=key_store)
    with open_customer_keys(settings) as keys:
        made = keys.keys_or_new(f"c{n}" for n in range(700))
        old = keys.master
        assert keys.rewrap(MasterKey.load(tmp_path / "new.key", create=True)) == 700
    with pytest.raises(ConfigurationError, match="wrapped by master key"), open_customer_keys(settings) as keys:
        keys.key("c1")
    settings = Settings(home=tmp_path / "home", key_store=key_store, master_key=tmp_path / "new.key")
    with open_customer_keys(settings) as keys:
        assert keys.keys(made) == made
        for customer, wrapped in keys.wrapped_keys():
            with pytest.raises(ValueError):
                old.unwrap(customer, wrapped)


def test_a_key_store_that_cannot_be_reached_is_one_clear_line(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home", key_store="postgresql://lifecycle@127.0.0.1:1/keys")
    assert lifecycle(settings, "publish", str(_zelda(tmp_path))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key store at postgresql://127.0.0.1:1/keys cannot be reached" in err
    assert "--key-store" in err
    assert lifecycle(Settings(home=tmp_path / "home"), "publish", "-", "--key-store", "mysql://x/y") == 2
    assert "is not a PostgreSQL address" in capsys.readouterr().err
