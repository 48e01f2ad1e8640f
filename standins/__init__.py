"""Local stand-ins for the hosted realtime services, speaking their protocols on loopback: the REST API the backend
publishes to and the WebSocket the official browser SDK subscribes on. The tests use them, and so does
``hafi-realtime dev --provider ably|pusher``: a front-end developer needs no account."""
