"""The periodic work `credo serve` does: the expiry sweep and notice delivery."""

from __future__ import annotations

import logging
import threading
import time

from credo.domain.errors import CredoError
from credo.services.notices import Sender, deliver
from credo.services.register import Register
from credo.services.sweep import sweep

log = logging.getLogger("credo.background")


class Background:
    """A daemon thread: sweep every `sweep_every` seconds, deliver every `deliver_every`."""

    def __init__(
        self,
        register: Register,
        sender: Sender,
        *,
        sweep_every: float = 3600,
        deliver_every: float = 30,
    ) -> None:
        self.register = register
        self.sender = sender
        self.sweep_every = sweep_every
        self.deliver_every = deliver_every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="credo-background", daemon=True)

    def start(self) -> None:
        """Start the loop."""
        self.thread.start()

    def close(self) -> None:
        """Stop the loop and wait for the current round."""
        self.stop.set()
        self.thread.join(timeout=30)

    def _run(self) -> None:
        next_sweep = time.monotonic()
        while not self.stop.is_set():
            if time.monotonic() >= next_sweep:
                self._guarded("sweep", lambda: sweep(self.register, actor="serve"))
                next_sweep = time.monotonic() + self.sweep_every
            self._guarded("delivery", lambda: deliver(self.register, self.sender))
            self.stop.wait(self.deliver_every)

    def _guarded(self, what: str, job: object) -> None:
        try:
            job()  # type: ignore[operator]
        except CredoError as exc:  # e.g. no active policy yet: nothing to do
            log.info("%s skipped: %s", what, exc)
        except Exception:  # the loop must survive a database restart
            log.exception("%s failed; retrying on the next round", what)
