"""The outbox: realtime messages written in the same transaction as the change that causes them, published after
commit, and kept as the per-channel log that ``/updates`` reads.

- ``store``: writing messages inside the caller's transaction, numbered per channel, taking the channel's lease;
- ``publishing``: the lease holder's loop (a group per channel per call, within the ceiling) and the bookkeeping of
  each attempt (published, backoff, parked, the provider's health and its probe);
- ``relay``: taking the lease of channels with pending messages and publishing them (the scheduled function,
  ``hafi-realtime relay``);
- ``event_log``: the reads behind ``/updates`` and a page's starting ``seq``;
- ``operations``: what operators look at and do (counts, re-queueing parked messages).

Who publishes is decided per channel: the channel's row in ``channel_sequences`` carries a publish lease, taken by
the statement that stores a writer's events when it is free or expired, held by one publisher at a time (a request
or a relay), and released in the statement that marks its last group published. One publish is in flight per
channel, no more often than the channel's ceiling; every publish attempt is cut off by the publish timeout, which
settings keep well below the lease, so a lease always outlives the attempt that holds it.
"""
