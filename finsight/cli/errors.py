"""The one line every command answers when the local stack is down (no traceback), and how it is recognised.

Light on purpose (no driver imports): the CLI root uses it before any command module is loaded.
"""

from __future__ import annotations

STACK_DOWN = "stack not reachable, run `finsight local up` first"

# exception types (by name: the drivers are not imported here) that mean "nothing listens on that port"
_CONNECTION_ERRORS = {
    "ConnectionRefusedError",
    "EndpointConnectionError",
    "NewConnectionError",
    "MaxRetryError",
    "ConnectionError",
}
_MESSAGES = ("connection refused", "failed to connect", "could not connect", "connect call failed")
# raised before any connection: the stack's state dir has no credentials yet (finsight.aws.admin_credentials)
_NOT_SET_UP_ERRORS = {"LocalStackNotUpError"}


def is_stack_down(exc: BaseException) -> bool:
    """True when the error (or one it was raised from) is a refused connection to 127.0.0.1 / localhost, or a local
    stack never brought up in this state dir."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in _NOT_SET_UP_ERRORS:
            return True
        text = str(current).lower()
        local = "127.0.0.1" in text or "localhost" in text
        if type(current).__name__ in _CONNECTION_ERRORS and (local or isinstance(current, ConnectionRefusedError)):
            return True
        if local and any(m in text for m in _MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False
