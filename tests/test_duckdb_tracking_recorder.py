"""The DuckDB tracking recorder passes the eventsourcing library's own test case."""

from __future__ import annotations

import tempfile
from pathlib import Path

from eventsourcing.persistence import Tracking
from eventsourcing.tests.persistence import TrackingRecorderTestCase

from projections.stores.duckdb_tracking_recorder import DuckDBTrackingRecorder


class TestInMemoryDuckDBTrackingRecorder(TrackingRecorderTestCase):
    def create_recorder(self) -> DuckDBTrackingRecorder:
        return DuckDBTrackingRecorder(":memory:")


class TestFileDuckDBTrackingRecorder(TrackingRecorderTestCase):
    def setUp(self) -> None:
        self._dir = tempfile.TemporaryDirectory()

    def tearDown(self) -> None:
        self._dir.cleanup()

    def create_recorder(self) -> DuckDBTrackingRecorder:
        return DuckDBTrackingRecorder(str(Path(self._dir.name) / "views.duckdb"))

    def test_positions_survive_reopening(self) -> None:
        path = str(Path(self._dir.name) / "reopen.duckdb")
        recorder = DuckDBTrackingRecorder(path)
        recorder.insert_tracking(Tracking("customer-events:0", 7))
        recorder.close()
        self.assertEqual(DuckDBTrackingRecorder(path).max_tracking_id("customer-events:0"), 7)



