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

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dnd_ledger.domain.errors import LedgerUnavailable
from dnd_ledger.projections.schema import VIEWS

if TYPE_CHECKING:
    from dnd_ledger.projections.projector import Projector
    from dnd_ledger.projections.queries import ViewReader

_log = logging.getLogger("dnd_ledger")


class FreshnessGate:
    """Runs ``check`` so that each caller of :meth:`ensure` is covered by a check
    that started after it called; a failed check fails every caller it covers."""

    def __init__(self, check: Callable[[], None], *, deadline: float) -> None:
        self._check = check
        self.deadline = deadline
        self._cond = threading.Condition(threading.Lock())
        self._started = 0  # checks begun
        self._finished = 0  # checks ended (they run one at a time, so in order)
        self._running = False
        self._waiting = 0  # callers waiting on the condition
        self._error: BaseException | None = None  # the last finished check's failure

    def ensure(self) -> None:
        give_up: float | None = None
        with self._cond:
            need = self._started + 1  # the first check to start after this call
            while self._finished < need:
                if not self._running:
                    self._run()
                    continue
                if give_up is None:
                    give_up = time.monotonic() + self.deadline
                left = give_up - time.monotonic()
                if left <= 0:
                    raise LedgerUnavailable(
                        f"the views could not be shown current within {self.deadline:g} s"
                        " (a check of the log is still running)"
                    )
                self._waiting += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._waiting -= 1
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
            if self._waiting:
                self._cond.notify_all()


class ViewFreshness:
    """The check every query passes: the log's head against the views' positions.

    If the views hold every stored event and this process's caches agree with
    them, it passes at once. Otherwise it catches the views up (under the lock
    the writer holds while it projects its own events), within the deadline, or
    raises :class:`LedgerUnavailable`. On a SQLite file, ``PRAGMA data_version``
    tells a thread's reading connection whether anyone committed since its last
    passed check: if nobody did, nothing can have changed, and the check is that
    one pragma.
    """

    def __init__(
        self,
        projector: Projector,
        views: ViewReader,
        notary: Any,
        lock: threading.Lock,
        *,
        events_table: str,
        deadline: float,
    ) -> None:
        self.projector = projector
        self.views = views
        self.notary = notary
        self.lock = lock
        self.deadline = deadline
        self._statement = self._head_statement(events_table)
        self._local = threading.local()
        self.gate = FreshnessGate(self._check, deadline=deadline)

    def ensure(self) -> None:
        self.gate.ensure()

    @property
    def probe(self) -> tuple[str, str]:
        """What a read on a SQLite file joins to learn, in its own statement, what a
        check would (see :meth:`confirms`): the FROM item and the select-list of the
        connection's ``PRAGMA data_version``."""
        return "pragma_data_version AS d", "d.data_version"

    def confirms(self, values: tuple[Any, ...]) -> bool:
        """Whether a read on this thread's read-only SQLite connection whose statement
        saw ``values`` (the :attr:`probe`'s columns) is as current as a check would make
        it: the thread's last passed check saw the same data version on the same
        connection, so nobody has committed since, and this process's caches are where
        they were then. (PostgreSQL has no such probe: a read that waits on a locked
        view table would wait out the statement timeout, not fail within the deadline.)"""
        passed = getattr(self._local, "passed", None)
        return passed is not None and passed == self._state(int(values[0]))

    def _state(self, data_version: int) -> tuple[int, int | None, int]:
        return data_version, self.projector.cached_at, self.views.generation

    def _head_statement(self, events_table: str) -> str:
        """One statement: the log's head and each view's tracking position."""
        p = self.projector
        names = ", ".join(f"'{p.tracking_name(v)}'" for v in VIEWS)
        if p.sql.dialect == "postgres":
            head = f"SELECT MAX(notification_id) FROM {p.qualified(events_table)}"
        else:
            head = f"SELECT MAX(rowid) FROM {events_table}"
        return (
            f"SELECT ({head}), application_name, MAX(notification_id)"
            f" FROM {p.tracking_table()} WHERE application_name IN ({names})"
            " GROUP BY application_name"
        )

    def _check(self) -> None:
        version = self.views.data_version()
        passed = getattr(self._local, "passed", None)
        if version is not None and passed == self._state(version):
            self.keep_notary_up()  # nobody committed since this thread's last check
            return
        rows = self.views.read(self._statement)
        head = int(rows[0][0] or 0) if rows else int(self.projector.head())
        low = min((int(r[2] or 0) for r in rows), default=0) if len(rows) == len(VIEWS) else 0
        if low < head or self.projector.cached_at != low:
            self._catch_up(head - low)
        if version is not None:
            self._local.passed = self._state(version)
        self.keep_notary_up()

    def _catch_up(self, lag: int) -> None:
        deadline = time.monotonic() + self.deadline
        if not self.lock.acquire(timeout=self.deadline):
            raise LedgerUnavailable(
                f"the views could not be shown current within {self.deadline:g} s"
                " (another thread holds them)",
                lag=lag,
            )
        try:
            self.projector.catch_up(deadline=deadline)
        except LedgerUnavailable:
            raise
        except Exception as e:
            raise LedgerUnavailable(
                f"the views could not be brought to the log's head: {type(e).__name__}",
                lag=lag,
            ) from e
        finally:
            self.lock.release()

    def keep_notary_up(self) -> None:
        """The notary follows the log when the ledger is used (at most once a second).
        Its failure never fails a query: ``verify`` shows a notary that lags."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            self.notary.keep_up()
        except Exception as e:  # logged; the notary catches up on its next turn
            _log.warning("the notary could not catch up: %s: %s", type(e).__name__, e)
        finally:
            self.lock.release()


__all__ = ["FreshnessGate", "ViewFreshness"]
