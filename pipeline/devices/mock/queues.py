"""Bounded frame queues with a stated overflow policy and a drop counter.

Live cameras drop their oldest frame when full (latency stays bounded, the drop is counted); file sources block
the producer (nothing is lost). Every queue of a device shares one condition so the batcher can wait for a
frame from any camera.
"""

from __future__ import annotations

import collections
import threading
from typing import Any


class FrameQueue:
    def __init__(self, capacity: int, drop_oldest: bool, ready: threading.Condition):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.drop_oldest = drop_oldest
        self.ready = ready
        self.items: collections.deque = collections.deque()
        self.dropped = 0

    def put(self, item: Any, stop: threading.Event) -> bool:
        """Add an item; returns True when an older item was dropped to make room. A blocking queue waits for
        room until `stop` is set (then the item is discarded and False returned)."""
        with self.ready:
            dropped = False
            if len(self.items) >= self.capacity:
                if self.drop_oldest:
                    self.items.popleft()
                    self.dropped += 1
                    dropped = True
                else:
                    while len(self.items) >= self.capacity and not stop.is_set():
                        self.ready.wait(0.1)
                    if stop.is_set():
                        return False
            self.items.append(item)
            self.ready.notify_all()
            return dropped

    def pop(self) -> Any | None:
        """The oldest item or None; callers hold `ready` (the batcher takes from several queues at once)."""
        if not self.items:
            return None
        item = self.items.popleft()
        self.ready.notify_all()  # a blocked file source may continue
        return item

    def peek_time(self) -> float | None:
        return self.items[0].info.monotonic_time if self.items else None

    def __len__(self) -> int:
        return len(self.items)
