"""Logging filters the settings name."""

import logging

import redis.exceptions


class QuietRedisOutage(logging.Filter):
    """
    Drop the channel layer's tracebacks for a Redis that is out of reach.

    channels-redis logs one with every retry of its receiver (each second) while Redis restarts;
    the connection timer (rooms.connections) reports the outage and its end in one line each.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(
            error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
        )
