"""How this project's processes use Python's garbage collector: while a cold start builds, and once it is built.
Kept apart from the rest of ``core`` so that a function can set it up before importing anything heavy."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Python's full (generation 2) collection walks every object the process holds. A Socket.IO node holding thousands
# of sockets holds millions of objects, and with the default thresholds a join storm (the heap grows by a quarter
# again and again) or a fan-out (each broadcast allocates per recipient) set off full collections that took 0.3-2 s
# each in the 3,000-client benchmark, a fifth of the node's time and the largest share of its fan-out p99.
# Young collections are not free either: after each broadcast every socket's engine.io writer waits again on new
# objects (a coroutine, a future, a timeout and its timer: about 15 per socket, 75,000 at 5,000 viewers), all alive
# and all young, and a young collection walks each of them. At 10,000 allocations between young collections about
# one such walk fell in every broadcast, 10-30 ms with the loop blocked; at 100,000 they are a tenth as frequent.
# The fan-out p99 at 5,000 clients went from 162-243 ms to 134-140 ms in three runs each; the node's peak memory
# did not change (359 MB). Short-lived cycles (tasks, futures) are still taken by young collections.
# An API server answering 200 likes at once holds their requests alive the same way: at the default thresholds its
# collections took 0.24-0.26 ms of each like's 1.0-1.4 ms of Python, none at these.
GC_THRESHOLDS = (100_000, 50, 100)


def tune_garbage_collection() -> None:
    """For a process that outlives its requests (a Socket.IO node, the API under uvicorn, a warm function): objects
    alive once it is built (modules, settings, the app) are never garbage, so ``gc.freeze`` takes them out of every
    later collection; then the thresholds above."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@contextmanager
def building_without_collections() -> Iterator[None]:
    """Around a function's cold start: its imports and the app it builds allocate some 165,000 objects that stay
    alive, so every collection set off meanwhile walks a growing heap and finds nothing to free: about 70 ms of a
    600 ms cold start (bench/coldstart.py). Collections resume afterwards, tuned as above, with what was built
    frozen; also when the build fails, so that the error is reported by a process that behaves as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        tune_garbage_collection()
        if was_enabled:
            gc.enable()
