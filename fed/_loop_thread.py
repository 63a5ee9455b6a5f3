"""An asyncio event loop running in a daemon thread of the driver."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Coroutine


class LoopThread:
    """An event loop in its own daemon thread; coroutines are handed to it from any thread.

    Args:
        name: the thread's name (shows in py-spy and thread dumps).
    """

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine) -> concurrent.futures.Future:
        """Schedule ``coro`` on the loop; returns a Future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def cancel_tasks(self, timeout_s: float) -> None:
        """Cancel every task on the loop and wait until they ended (their Futures end cancelled)."""
        self.run(_cancel_other_tasks()).result(timeout_s)

    def stop(self, timeout_s: float) -> None:
        """Stop the loop and wait (at most ``timeout_s``) for its thread to end."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.loop.close()


async def _cancel_other_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
