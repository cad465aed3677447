"""Collapse bursts of one log line into the first and a count.

Under a connection flood the node's log used to grow by thousands of tracebacks a second
(issue 7: asyncio's "socket.accept() out of system resource" and aiohttp's per-connection
errors, 2 GB in 10 minutes), which fills the disk and buries everything else. Like
syslog's "last message repeated N times", `RepeatFilter` lets the first record of a kind
through, drops the same kind for ``window`` seconds while counting, and appends the count
to the first record of that kind after the window.

A record's kind is its logger, level, message template (``record.msg`` before %-formatting,
so "accept failed on fd %d" is one kind whatever the fd) and exception type. At most
``max_kinds`` kinds are remembered, least recently seen forgotten first, so the filter's
memory is bounded however varied the messages. A burst that stops never reports its count;
the next occurrence of that kind, however late, does.

The node's progress (:data:`PROGRESS_LOGGER`: a line per block imported or finalized, as
Substrate's "Imported #N") is never collapsed: it is what an operator watches, one line of it
every block (with 6 s blocks the filter hid every other one), and it is bounded by consensus
rather than by a peer's rate: a block is imported only once it is valid, sealed by a
validator in its slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Final

__all__ = ["PROGRESS_LOGGER", "RepeatFilter", "install_repeat_filter"]

DEFAULT_WINDOW: Final = 10.0
DEFAULT_MAX_KINDS: Final = 1024
#: The logger of the node's per-block progress lines, which the filter always lets through.
PROGRESS_LOGGER: Final = "polchain.blocks"


class RepeatFilter(logging.Filter):
    """A handler filter: one record per kind per ``window`` seconds, then a count."""

    def __init__(
        self,
        window: float = DEFAULT_WINDOW,
        max_kinds: int = DEFAULT_MAX_KINDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._clock = clock
        if not window > 0 or max_kinds < 1:
            raise ValueError("window must be positive and max_kinds at least 1")
        self.window = window
        self.max_kinds = max_kinds
        # kind -> [start of its window, records dropped in it]; insertion order = recency.
        self._kinds: dict[tuple[str, int, str, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == PROGRESS_LOGGER:
            return True
        if record.name == "aiohttp.server" and record.exc_info:
            _shorten_malformed_request(record)
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        kind = (record.name, record.levelno, str(record.msg), exc)
        now = self._clock()
        entry = self._kinds.pop(kind, None)
        if entry is not None and now - entry[0] < self.window:
            entry[1] += 1
            self._kinds[kind] = entry
            return False
        self._kinds[kind] = [now, 0.0]
        if len(self._kinds) > self.max_kinds:
            del self._kinds[next(iter(self._kinds))]
        if entry is not None and entry[1]:
            # Plain text with no '%': safe to append to a template that gets record.args.
            record.msg = (
                f"{record.msg} [the same message was repeated {int(entry[1])} more times "
                f"in {self.window:g} s and not logged]"
            )
        return True


def _shorten_malformed_request(record: logging.LogRecord) -> None:
    """aiohttp logs each request it cannot parse (a bad chunk size, 129 headers, a 9 KB header
    line) as "Error handling request" at ERROR with a full traceback: the client's error, not
    the node's, and one traceback per malformed request a client cares to send (an outside
    tester's finding, round 7). It becomes one INFO line with the parser's reason, at most 200
    characters of it."""
    # (aiohttp.server logged the record: aiohttp is imported already)
    from aiohttp.http_exceptions import HttpProcessingError

    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError):
        # One line, bounded: the parser's message spans lines and may quote the client's bytes.
        record.msg, record.args = "malformed HTTP request refused: %s", (" ".join(str(exc).split())[:200],)
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None


def install_repeat_filter(
    handlers: Iterable[logging.Handler] | None = None, window: float = DEFAULT_WINDOW
) -> RepeatFilter:
    """Put one `RepeatFilter` on ``handlers``, by default every handler of the root logger
    (where asyncio's and aiohttp's records end up too: a filter on a logger would not see its
    children's). The CLI names the handler it made, so a host that configured logging
    itself (an embedding program, pytest) keeps its handlers unfiltered."""
    repeat = RepeatFilter(window)
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        handler.addFilter(repeat)
    return repeat
