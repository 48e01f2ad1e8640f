"""Everything a guest or an admin can do, each written once for every transport.

The HTTP routes and the Socket.IO handlers parse their input into ``core.schemas`` models and call these (a module
per area, as ``core.services``, so that a function loads only its own); each owns its transaction (rate limit,
change and the messages it causes, in one commit), publishes after commit, and returns the answer the client gets.
Errors are ``core.errors`` exceptions, mapped to HTTP or Socket.IO by their transport.
"""
