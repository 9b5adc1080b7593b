"""Read-your-writes for every query: one check of the log's head against the views,
shared by all the requests that arrived before it started.

A query that starts after a write was acknowledged (in any process sharing the
database) must reflect it. So before it answers, a query needs a check of the
log's head that *started after the query arrived*: such a check sees every
write acknowledged before that moment, and catches the views up to it (or fails,
and the query fails closed). Checks run one at a time; a request that arrives
while one is in flight waits for it to end and then for the next one, which
serves every request waiting by then. Under load the cost stays one check per
check-duration, not one per request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dnd_ledger.domain.errors import LedgerUnavailable


class FreshnessGate:
    """Runs ``check`` so that each caller of :meth:`ensure` is covered by a check
    that started after it called; a failed check fails every caller it covers."""

    def __init__(self, check: Callable[[], None], *, deadline: float) -> None:
        self._check = check
        self.deadline = deadline
        self._cond = threading.Condition()
        self._started = 0  # checks begun
        self._finished = 0  # checks ended (they run one at a time, so in order)
        self._running = False
        self._error: BaseException | None = None  # the last finished check's failure

    def ensure(self) -> None:
        give_up = time.monotonic() + self.deadline
        with self._cond:
            need = self._started + 1  # the first check to start after this call
            while self._finished < need:
                if not self._running:
                    self._run()
                    continue
                left = give_up - time.monotonic()
                if left <= 0:
                    raise LedgerUnavailable(
                        f"the views could not be shown current within {self.deadline:g} s"
                        " (a check of the log is still running)"
                    )
                self._cond.wait(left)
            error = self._error
        if error is None:
            return
        if isinstance(error, LedgerUnavailable):
            raise LedgerUnavailable(str(error), lag=error.lag) from error
        raise LedgerUnavailable(
            f"the views could not be checked against the log: {type(error).__name__}: {error}"
        ) from error

    def _run(self) -> None:
        """Run one check, with the condition's lock released meanwhile."""
        self._running = True
        self._started += 1
        number = self._started
        error: BaseException | None = None
        self._cond.release()
        try:
            self._check()
        except BaseException as e:  # handed to every caller this check covers
            error = e
        finally:
            self._cond.acquire()
            self._running = False
            self._finished = number
            self._error = error
            self._cond.notify_all()


__all__ = ["FreshnessGate"]
