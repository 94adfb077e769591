"""Entry points of the routing service: the gRPC server."""
