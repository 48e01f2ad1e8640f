"""The self-hosted Socket.IO server. Importing this loads python-socketio: only its own commands and ``dev`` do."""

from core.socketio_server.server import SocketNode, build_node, create_server

__all__ = ["SocketNode", "build_node", "create_server"]
