"""Use cases, access policy and processes. Depends on ``domain`` and ``eventsourcing`` only."""
