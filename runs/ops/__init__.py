"""Process tools: the embedded Valkey, child-process groups, and the benchmark harness.

They sit below the wiring (orchestration/ only wires) so that the commands, the tests and a
host project can use them without importing the standalone stack."""
