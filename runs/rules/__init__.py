"""Pure rules: no ORM, no broker, no Django settings needed; unit-testable in milliseconds."""
