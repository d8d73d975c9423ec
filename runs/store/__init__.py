"""The store: the one writer of states, counters and events.

Every state change is a compare-and-set (``UPDATE … WHERE state IN (expected)``) checked
against the pure transition table (runs.rules.states) and recorded as a RunEvent in the same
transaction; events are published to the channel layer after commit."""
