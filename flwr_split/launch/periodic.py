"""`PeriodicSampler`: a ``with`` block during which a thread calls ``sample()`` every interval."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self


class PeriodicSampler:
    """Calls `sample` on entering, every ``interval`` seconds in a thread, and on leaving.

    Subclasses define `sample` (what one look at the processes records).

    Parameters
    ----------
    interval : float
        Seconds between two samples.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def sample(self) -> None:
        """Take one sample now."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def __enter__(self) -> Self:
        self.sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()
        self.sample()
