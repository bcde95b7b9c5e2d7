"""The projections in bulk, for a replay: the parts workers write and their assembly into
a new generation, the scratch place `verify` and the dry run replay into, and their
comparisons with the live stores."""
