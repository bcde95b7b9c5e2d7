"""Live processing: the processor that derives the lifecycle batch by batch with its
positions, the session that opens its parts together, and the commands that run it
(`process`, `clock`, `fit-value-model`)."""
