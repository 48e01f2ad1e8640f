"""What clients send and get, over HTTP and Socket.IO alike (camelCase on the wire, like the realtime payloads).

A module per area, as ``core/services``: a function loads the models of its own routes only (the like function:
``base`` and ``likes``; ``core.messages`` imports the comment models only to build a comment's message). Input
limits are declared here once: the HTTP bodies and the Socket.IO requests use the same field types."""
