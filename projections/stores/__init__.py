"""Where the engine's derived data is kept: the DuckDB projection store with its tracking
recorder and its snapshots for readers, and the RocksDB state store."""
