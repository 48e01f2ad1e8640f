"""Local stand-ins for the hosted realtime services: real HTTP on loopback, checking requests as the services do."""
