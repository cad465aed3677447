"""The node's process limits: the open-file limit raised at start, and repeated log lines
collapsed (issue 7, item 2)."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap

import pytest

from node.logfilter import PROGRESS_LOGGER, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _logger(
    window: float, max_kinds: int = 1024, clock: Clock | None = None
) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatFilter(window, max_kinds, clock or Clock()))
    logger = logging.getLogger(f"test.repeat.{id(out)}")
    logger.propagate = False
    logger.addHandler(handler)
    return logger, out


def test_a_burst_of_tracebacks_becomes_one_line_and_a_count():
    clock = Clock()
    logger, out = _logger(window=10, clock=clock)
    for fd in range(10_000):
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            logger.exception("socket.accept() out of system resource (fd %d)", fd)
    text = out.getvalue()
    assert text.count("Traceback") == 1
    assert text.count("out of system resource") == 1
    clock.now = 10.0
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        logger.exception("socket.accept() out of system resource (fd %d)", 7)
    lines = [line for line in out.getvalue().splitlines() if "out of system resource" in line]
    assert len(lines) == 2
    assert "(fd 7) [the same message was repeated 9999 more times in 10 s and not logged]" in lines[1]


def test_different_messages_and_levels_are_not_collapsed():
    logger, out = _logger(window=60)
    logger.warning("peer %s misbehaved", "a")
    logger.warning("peer %s misbehaved", "b")  # same template: collapsed
    logger.error("peer %s misbehaved", "c")  # another level
    logger.warning("block %d imported", 1)  # another template
    assert out.getvalue().splitlines() == ["peer a misbehaved", "peer c misbehaved", "block 1 imported"]


def test_the_nodes_progress_lines_are_never_collapsed():
    # One "Imported #N" a block is what an operator watches: with 6 s blocks a 10 s window hid
    # every other one. The same template on another logger is still collapsed.
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatFilter(10, clock=Clock()))
    for name in (PROGRESS_LOGGER, "test.progress.other"):
        logger = logging.getLogger(name)
        # setLevel, not ``level =``: it clears the loggers' cached isEnabledFor answers, which an
        # earlier test on the same worker may have left at "not INFO" (seen with --dist loadfile).
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            for number in range(1, 4):
                logger.info("Imported #%d", number)
        finally:
            logger.removeHandler(handler)
    assert out.getvalue().splitlines() == ["Imported #1", "Imported #2", "Imported #3", "Imported #1"]


def test_memory_is_bounded_by_max_kinds():
    logger, out = _logger(window=60, max_kinds=4)
    for i in range(100):
        logger.warning(f"distinct message {i}")
    handler = logger.handlers[0]
    (repeat,) = handler.filters
    assert isinstance(repeat, RepeatFilter)
    assert len(repeat._kinds) == 4
    assert len(out.getvalue().splitlines()) == 100


def test_bad_window_is_refused():
    with pytest.raises(ValueError, match="window"):
        RepeatFilter(0)


def test_the_soft_open_file_limit_is_raised_to_the_hard_one():
    script = textwrap.dedent(
        """
        import resource
        from node.cli import raise_open_file_limit
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        raise_open_file_limit()
        print(*resource.getrlimit(resource.RLIMIT_NOFILE), hard)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    soft, hard, original_hard = map(int, out.stdout.split())
    assert hard == original_hard
    assert soft == min(hard, 1 << 20) if hard != -1 else soft == 1 << 20
    assert soft > 64


async def test_a_malformed_http_request_is_one_info_line_not_a_traceback() -> None:
    """A request aiohttp cannot parse (here a chunk size that is not hex) was logged at ERROR
    with a full traceback, one per malformed request a client cared to send (an outside
    tester's finding, round 7). Through the node's filter it is one INFO line with the
    parser's reason; any other exception aiohttp logs keeps its traceback. A real aiohttp
    server on a free loopback port, a raw socket as the client."""
    import asyncio

    from aiohttp import web

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter(10, clock=Clock()))
    server_log = logging.getLogger("aiohttp.server")
    server_log.addHandler(handler)
    app = web.Application()
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_post("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n")
        await writer.drain()
        assert b" 400 " in await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        for _ in range(50):
            if out.getvalue():
                break
            await asyncio.sleep(0.05)
        try:
            raise RuntimeError("a bug")
        except RuntimeError:
            server_log.exception("Error handling request")
    finally:
        server_log.removeHandler(handler)
        await runner.cleanup()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("INFO aiohttp.server: malformed HTTP request refused: 400, message: Invalid character"), lines
    assert len(lines[0]) <= len("INFO aiohttp.server: malformed HTTP request refused: ") + 200
    assert "Traceback" not in lines[0] and lines[1] == "ERROR aiohttp.server: Error handling request"
    assert lines[2] == "Traceback (most recent call last):" and lines[-1] == "RuntimeError: a bug"
