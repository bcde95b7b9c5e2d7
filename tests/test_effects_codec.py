"""What a group member commits for the projector (projections/stores/effects_codec.py,
consumers/group/projection_topic.py): a checkpoint's effects through their wire form
give the same projections, and the chunks of a checkpoint are put together again
whatever a fenced member left before them."""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from pathlib import Path

from consumers.group.changelog import CHECKPOINT_HEADER
from consumers.group.projection_topic import CHUNK_BYTES, CHUNK_HEADER, ChunkAssembler, chunks
from consumers.logs import open_event_log
from consumers.logs.event_log import CUSTOMER_EVENTS
from consumers.processing.checkpoint import CheckpointPolicy, SinceCheckpoint
from consumers.processing.engine_session import EngineSession
from consumers.processing.outputs import LocalOutputs
from consumers.publisher import publish_lines
from consumers.settings import Settings
from lifecycle.partition_time import PartitionTime
from lifecycle.population import PopulationSpec, generate
from projections.stores.effects_codec import batch_effects, decode_effects, encode_effects
from projections.stores.state_store import StateBatch

SPEC = PopulationSpec(customers=300, seed=17, days=300)


class _ThroughTheWire(LocalOutputs):
    """A single engine's outputs, given each checkpoint as the projector reads it."""

    def checkpoint(self, since: Mapping[str, SinceCheckpoint], times: Mapping[str, PartitionTime],
                   batches: list[StateBatch]) -> None:
        wired = {}
        for name, changes in since.items():
            data = encode_effects(changes.effects, 0, "v1")
            decoded = decode_effects(data)
            assert (decoded.partition, decoded.end, decoded.policy_version) == (
                name, changes.effects.tracking.notification_id, "v1")
            wired[name] = SinceCheckpoint(changes.effects.tracking)
            wired[name].effects = batch_effects(decoded)
        super().checkpoint(wired, times, batches)


def _derived(home: Path, wire: bool) -> list[list[tuple]]:  # type: ignore[type-arg]
    settings = Settings(home=home)
    with open_event_log(settings, CUSTOMER_EVENTS) as log:
        publish_lines(generate(SPEC), log, lambda n, reason: None)
    with EngineSession(settings, 500, CheckpointPolicy(2, 3_600.0)) as session:
        if wire:
            session.processor.outputs = _ThroughTheWire(session.store, session.lifecycle_log)
        assert session.run_once().checkpoints > 2
        with session.store.recorder.transaction() as connection:
            tables = [name for (name,) in connection.execute(
                "SELECT table_name FROM duckdb_tables() WHERE table_name NOT IN ('engine_commits') ORDER BY 1"
            ).fetchall()]
            return [connection.execute(f'SELECT * FROM "{name}" ORDER BY ALL').fetchall() for name in tables]


def test_effects_through_their_wire_form_give_the_same_projections(tmp_path):
    direct, wired = _derived(tmp_path / "direct", wire=False), _derived(tmp_path / "wired", wire=True)
    assert wired == direct
    assert sum(len(rows) for rows in direct) > 1_000


def _fed(assembler: ChunkAssembler, records: list[tuple[bytes, bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    wholes = [assembler.add(value, [(CHECKPOINT_HEADER, name), (CHUNK_HEADER, place)])
              for name, value, place in records]
    return [whole for whole in wholes if whole is not None]


def test_a_checkpoint_is_put_together_from_its_chunks_past_what_a_fenced_member_left():
    data = random.Random(5).randbytes(CHUNK_BYTES * 5 // 2)  # what zlib cannot make smaller
    cut = chunks(data)
    assert len(cut) == 3 and zlib.decompress(b"".join(chunk for chunk, _ in cut)) == data
    assert [place for _, place in cut] == [b"0/3", b"1/3", b"2/3"]
    fenced = [(b"p@0-9", chunk, place) for chunk, place in cut[:2]]
    taken_over = [(b"p@0-7", chunk, place) for chunk, place in cut]
    assert _fed(ChunkAssembler(), [*fenced, *taken_over]) == [(b"p@0-7", data)]
    assert _fed(ChunkAssembler(), [taken_over[0], taken_over[2]]) == [], "a chunk out of place is dropped"
    assert _fed(ChunkAssembler(), taken_over[1:]) == [], "a checkpoint is read from its first chunk"
    assert _fed(ChunkAssembler(), [taken_over[0], fenced[1], *taken_over[1:]]) == [(b"p@0-7", data)]
    (empty, place), = chunks(b"")
    assert place == b"0/1" and _fed(ChunkAssembler(), [(b"p@0-1", empty, place)]) == [(b"p@0-1", b"")]
    assert len(chunks(bytes(CHUNK_BYTES * 3))) == 1, "compressed before it is cut"
