"""The commands people run besides the engine's own: explaining a customer, listing dead
letters, and what every command shares to talk to a person (terminal-safe output,
progress, stopping on a signal)."""
