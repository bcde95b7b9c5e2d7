"""The wire form of what a checkpoint changed: `encode_effects`, `decode_effects`.

A member of a consumer group commits, with each checkpoint of a partition, everything
the projections need from it (the changed customers' states, the lifecycle events with
where their causes sit, dead letters, records waiting for time, profile changes, value
movements and fits, the partition's time rule), so that a projector elsewhere builds
the same tables from it with the same `DuckDBProjectionStore.prepare` a single engine
uses (consumers/group/projector.py). States travel in the state store's own encoding
and lifecycle events as the bytes the engine chained, so nothing is encoded a second
way; the rest is msgpack of plain values. Fields are only ever added, with defaults.
"""

from __future__ import annotations

from typing import Any

import msgspec
from eventsourcing.persistence import Tracking

from lifecycle.state import decode_state, encode_state
from projections.catalog.customer_facts import CustomerFacts
from projections.catalog.dead_letters import DeadLetter, HeldRecord
from projections.catalog.profiles import ProfileChanges
from projections.catalog.value_movements import Row, ValueMovements
from projections.stores.projection_store import BatchEffects
from schemas import ValueModelFitted, decode_event, decode_lifecycle_event, encode_event


class CheckpointEffects(msgspec.Struct, array_like=True, frozen=True):
    """One checkpoint of one input partition: from `start` to `end`, decided under
    the policy `policy_version`, and its effects on the projections."""

    partition: str
    start: int
    end: int
    policy_version: str
    states: list[bytes]
    lifecycle_events: list[tuple[int, bytes, int | None]]
    """(position taken at, the event's bytes, where its cause sits if elsewhere)."""
    partition_times: tuple[int | None, int | None] | None
    held: list[HeldRecord]
    released: list[tuple[str, int]]
    erased: list[str]
    profile_updates: dict[str, dict[str, Any]]
    movements: list[Row]
    movements_taken_at: list[int]
    value_fits: list[tuple[int, bytes]]
    dead_letters: list[DeadLetter]
    facts: list[tuple[Any, ...]] = []
    facts_taken_at: list[int] = []


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CheckpointEffects)


def encode_effects(effects: BatchEffects, start: int, policy_version: str) -> bytes:
    """`effects` of the batches since position `start`, as one msgpack value."""
    return _encoder.encode(CheckpointEffects(
        partition=effects.tracking.application_name,
        start=start,
        end=effects.tracking.notification_id,
        policy_version=policy_version,
        states=[encode_state(state) for state in effects.states],
        lifecycle_events=[(at, payload, cause) for (at, _, cause), payload
                          in zip(effects.lifecycle_events, effects.payloads, strict=True)],
        partition_times=effects.partition_times,
        held=effects.held,
        released=effects.released,
        erased=effects.profiles.erased,
        profile_updates=effects.profiles.updates,
        movements=effects.movements.rows,
        movements_taken_at=effects.movements.taken_at,
        value_fits=[(at, encode_event(fit)) for at, fit in effects.value_fits],
        dead_letters=effects.dead_letters,
        facts=effects.facts.rows,
        facts_taken_at=effects.facts.taken_at,
    ))


def decode_effects(data: bytes) -> CheckpointEffects:
    """Raises `msgspec.DecodeError` or `msgspec.ValidationError` on bytes not made by `encode_effects`."""
    return _decoder.decode(data)


def batch_effects(checkpoint: CheckpointEffects) -> BatchEffects:
    """The checkpoint's effects as the engine had them, for `DuckDBProjectionStore.prepare`."""
    fits = []
    for at, raw in checkpoint.value_fits:
        fit = decode_event(raw)
        assert isinstance(fit, ValueModelFitted), "encode_effects wrote fits only"
        fits.append((at, fit))
    return BatchEffects(
        tracking=Tracking(checkpoint.partition, checkpoint.end),
        states=[decode_state(raw) for raw in checkpoint.states],
        lifecycle_events=[(at, decode_lifecycle_event(raw), cause) for at, raw, cause in checkpoint.lifecycle_events],
        payloads=[raw for _, raw, _ in checkpoint.lifecycle_events],
        partition_times=checkpoint.partition_times,
        held=list(checkpoint.held),
        released=list(checkpoint.released),
        profiles=ProfileChanges(list(checkpoint.erased), dict(checkpoint.profile_updates)),
        movements=ValueMovements(list(checkpoint.movements), list(checkpoint.movements_taken_at)),
        value_fits=fits,
        dead_letters=list(checkpoint.dead_letters),
        facts=CustomerFacts(list(checkpoint.facts), list(checkpoint.facts_taken_at)),
    )
