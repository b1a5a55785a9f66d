"""Wrong sign-ins are slowed down: each address's recent failures make its next answers wait, doubling to a cap.

A guessed token is hopeless anyway (256 random bits), but API_TOKEN is whatever the admin chose, and a slowed-down
guesser also fills no logs. The wait is spent on the event loop (`asyncio.sleep`), so it holds no thread or
connection; it is per API process and forgotten on restart, which is enough to make guessing slow.
"""

import time
from dataclasses import dataclass, field

# Failures older than this are forgiven.
WINDOW_SECONDS = 15 * 60
# The first two mistakes are typos and answered at once; from the third on the wait doubles, up to 8 s.
FREE_FAILURES = 2
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 8.0
# Addresses remembered at most, so a flood of addresses cannot grow this without bound.
MAX_ADDRESSES = 10_000


@dataclass
class Throttle:
    failures: dict[str, list[float]] = field(default_factory=dict)

    def delay(self, address: str, now: float | None = None) -> float:
        """How long a sign-in from `address` waits before it is answered, given its recent failures."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self.failures.get(address, []) if now - t < WINDOW_SECONDS]
        extra = len(recent) - FREE_FAILURES
        return 0.0 if extra <= 0 else min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** (extra - 1))

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if len(self.failures) >= MAX_ADDRESSES and address not in self.failures:
            self.failures.pop(next(iter(self.failures)))
        kept = [t for t in self.failures.get(address, []) if now - t < WINDOW_SECONDS]
        self.failures[address] = [*kept, now]

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)
