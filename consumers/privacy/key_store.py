"""Which key store holds the customers' keys: the one the settings name.

By default a SQLite file in the home, for one publishing machine (or several
publishers sharing one home). With several publishing machines on one Kafka cluster
every publisher must find the same customer's key, and an erasure must delete it for
all of them at once: a PostgreSQL database they all reach, `--key-store
postgresql://...` (env `LIFECYCLE_KEY_STORE`). docs/architecture.md says why not a
compacted Kafka topic.
"""

from __future__ import annotations

from consumers.privacy.customer_keys import CustomerKeys, MasterKey
from consumers.privacy.sqlite_customer_keys import SQLiteCustomerKeys, delete_local_keys
from consumers.settings import Settings


def open_customer_keys(settings: Settings) -> CustomerKeys:
    """The configured key store, under the configured master key (the default one made
    on first use; a master key named but missing is an error)."""
    master = MasterKey.load(settings.master_key_path, create=settings.master_key is None)
    if settings.key_store is not None:
        # Imported only here: psycopg costs the embedded default 12 MiB and its start-up.
        from consumers.privacy.postgres_customer_keys import PostgreSQLCustomerKeys

        return PostgreSQLCustomerKeys(settings.key_store, master)
    return SQLiteCustomerKeys(settings.home / SQLiteCustomerKeys.FILE, master)


def destroy_keys(settings: Settings, customer_ids: list[str]) -> None:
    """Delete these customers' keys from the configured key store: what the engine does
    for each erasure it processes, so that one written to the log by another producer
    than `publish` erases too. Needs no master key: it only deletes."""
    if not customer_ids:
        return
    if settings.key_store is not None:
        from consumers.privacy.postgres_customer_keys import delete_shared_keys

        delete_shared_keys(settings.key_store, customer_ids)
    else:
        delete_local_keys(settings.home / SQLiteCustomerKeys.FILE, customer_ids)
