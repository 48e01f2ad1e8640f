"""The outbox: realtime messages written in the same transaction as the change that causes them, published after
commit, and kept as the per-channel log that ``/updates`` reads.

- ``store``: writing messages inside the caller's transaction, numbered per channel;
- ``publishing``: one publish attempt of messages a publisher holds, and its bookkeeping (published, backoff, parked,
  the provider's health and its probe);
- ``relay``: claiming what requests left pending and publishing it (the scheduled function, ``hafi-realtime relay``);
- ``event_log``: the reads behind ``/updates`` and a page's starting ``seq``;
- ``operations``: what operators look at and do (counts, re-queueing parked messages).

Who publishes a row is decided by a lease: ``next_attempt_at`` lies in the future while some publisher owns the
row. A request's own rows are born leased to it, so a relay never takes them while the request publishes; a relay
claims rows whose lease has run out with ``FOR UPDATE SKIP LOCKED``, so two relays never claim the same row. Every
publish attempt is cut off by the publish timeout, which settings keep well below the lease, so a lease always
outlives the attempt that holds it and no message is ever published by two publishers at once.
"""
