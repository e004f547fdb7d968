"""Clients of the external systems (igate one-stop systems, the population database through the
provincial LGSP, the national public service portal). Plain Python: nothing here imports Airflow,
so a data engineer can run a pull from a shell and the tests need no scheduler.

``connectors.http`` is the shared transport (time-outs, retries, error classes); the other modules
each speak one contract of ``shared/spec/world.md``.
"""

from connectors.http import (
    AmbiguousError,
    AuthError,
    ConnectorError,
    HttpClient,
    PermanentError,
    ProtocolError,
    RateLimitedError,
    RetryPolicy,
    Timeouts,
    TransientError,
)

__all__ = [
    "AmbiguousError",
    "AuthError",
    "ConnectorError",
    "HttpClient",
    "PermanentError",
    "ProtocolError",
    "RateLimitedError",
    "RetryPolicy",
    "Timeouts",
    "TransientError",
]
