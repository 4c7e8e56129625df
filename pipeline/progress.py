"""Progress reporting for long library calls: a ``progress(done, total)`` callback that draws a tqdm bar.

Library functions that take a ``progress`` callable (``simulate_mission``, the demo) call it with counts; the CLI
and the demo pass a :class:`TqdmProgress`.
"""

from __future__ import annotations

import sys

__all__ = ["TqdmProgress"]


class TqdmProgress:
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr, labelled ``desc``, counting ``unit``."""

    def __init__(self, desc: str, unit: str) -> None:
        self.desc, self.unit, self.bar = desc, unit, None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
