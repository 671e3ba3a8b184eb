"""The library's PostgreSQL factory, with the libpq options its datastore does not take.

``eventsourcing`` builds its pool from host, port, database, user and password only.
A Patroni cluster needs ``target_session_attrs=read-write`` on every connection as
well, or a pooled connection may land on a replica after a failover (a read-only
transaction error on every write). And libpq's own ``connect_timeout``, which the
library uses only as the pool's wait: without it, a host listed first that is down
without refusing (a powered-off machine) holds every reconnection for minutes.
"""

from typing import Any

from eventsourcing.postgres import PostgresFactory

TARGET_SESSION_ATTRS = "POSTGRES_TARGET_SESSION_ATTRS"  # our key, read only here


def libpq_options(env: Any) -> dict[str, Any]:
    """The options above, from a store's environment, for a pool's connections."""
    options: dict[str, Any] = {}
    if timeout := env.get(PostgresFactory.POSTGRES_CONNECT_TIMEOUT):
        options["connect_timeout"] = timeout
    if attrs := env.get(TARGET_SESSION_ATTRS):
        options["target_session_attrs"] = attrs
    return options


class LedgerPostgresFactory(PostgresFactory):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        kwargs = self.datastore.pool.kwargs
        assert isinstance(kwargs, dict)
        kwargs.update(libpq_options(self.env))
