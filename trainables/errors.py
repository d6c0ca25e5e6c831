"""One-line error text, for messages that quote a library's exception."""
from __future__ import annotations


def first_line(error: BaseException, limit: int = 200) -> str:
    """The exception's first message line (its type name when it has none), cut to `limit`."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
