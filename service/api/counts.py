"""How many jobs match a list's filters, without counting a large table on every page.

A count is exact and made with each page while it is under LARGE: cheap at that size, and what a user who just
queued a job expects to see. Once a filter matches LARGE jobs or more, this API process reuses the last count for
up to FRESH_SECONDS and then counts again in the background, answering with the previous count meanwhile: a
million-row count takes a Postgres backend ~100 ms, once per filter every FRESH_SECONDS instead of once a page.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# Below this many matching jobs a count goes with each page; the dashboard's pages stay exact for anyone's history.
LARGE = 10_000
# How stale a large total may be: a list of a million jobs gains or loses a few in that time.
FRESH_SECONDS = 10.0


@dataclass(frozen=True)
class Known:
    total: int
    at: float


class Counts:
    """One API process's recent large totals, by filter."""

    def __init__(self) -> None:
        self.known: dict[object, Known] = {}
        self.refreshing: dict[object, asyncio.Task[None]] = {}

    def large(self, key: object) -> int | None:
        """The last total for `key` if it was large (refreshed in the background once stale); None: count now."""
        known = self.known.get(key)
        return None if known is None else known.total

    def stale(self, key: object) -> bool:
        """Whether `key`'s large total is due for a recount."""
        known = self.known.get(key)
        return known is not None and time.monotonic() - known.at > FRESH_SECONDS

    def remember(self, key: object, total: int) -> None:
        """A total just counted: kept only when large (a small one is counted again with each page)."""
        if total >= LARGE:
            self.known[key] = Known(total, time.monotonic())
        else:
            self.known.pop(key, None)

    def refresh(self, key: object, count: Callable[[], Awaitable[int]]) -> None:
        """Count `key` again in the background, once at a time."""
        if key in self.refreshing:
            return

        async def again() -> None:
            try:
                self.remember(key, await count())
            except Exception:  # the next page tries again; the previous total stands meanwhile
                self.known[key] = Known(self.known[key].total, time.monotonic() - FRESH_SECONDS / 2)
            finally:
                self.refreshing.pop(key, None)

        self.refreshing[key] = asyncio.create_task(again(), name="count-jobs")
