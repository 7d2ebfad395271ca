"""Django's PostgreSQL backend with every wait on the server bounded (DATABASES ENGINE
"dashboard_project.postgresql", set by settings.py for postgres:// URLs).

The connect timeout bounds new connections and the statement timeout bounds queries on a live
server, but neither helps when the server (or the path to it) freezes under an open connection:
the server cannot cancel anything, TCP keeps acknowledging, and psycopg waits for an answer
forever, holding a worker. So the client gives up too: a query without an answer within
ANSWER_TIMEOUT seconds (a little over the statement timeout) closes its connection and raises
OperationalError, which the dashboard answers with a 503 page; and the health check of a reused
connection gets a second, since a `SELECT 1` that takes longer means the server is not there.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db.backends.postgresql import base

# Seconds the health check of a persistent connection may take before it counts as dead.
HEALTH_CHECK_SECONDS = 1.0


class BoundedConnection(psycopg.Connection):
    """A psycopg connection that waits at most `answer_timeout` seconds for the server."""

    answer_timeout: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        try:
            return super().wait(
                gen, interval=interval, timeout=self.answer_timeout if timeout is None else timeout
            )
        except psycopg.OperationalError:
            if self.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
                # Still waiting for an answer that did not come: the connection is unusable.
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"the database did not answer within {self.answer_timeout:g} s"
                ) from None
            raise


class _Psycopg:
    """psycopg as Django's backend sees it, except that connect() makes BoundedConnections."""

    def __getattr__(self, name: str) -> Any:
        return getattr(psycopg, name)

    @staticmethod
    def connect(*args: Any, **kwargs: Any) -> BoundedConnection:
        return BoundedConnection.connect(*args, **kwargs)


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _Psycopg()

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if isinstance(connection, BoundedConnection):
            connection.answer_timeout = self.settings_dict.get("ANSWER_TIMEOUT")
        return connection

    def is_usable(self) -> bool:
        connection = self.connection
        if not isinstance(connection, BoundedConnection):
            return super().is_usable()
        configured = connection.answer_timeout
        connection.answer_timeout = HEALTH_CHECK_SECONDS
        try:
            return super().is_usable()
        finally:
            connection.answer_timeout = configured
