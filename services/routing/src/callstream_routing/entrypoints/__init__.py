"""Entry points of the routing service: the gRPC servicer and its interceptors (built by `bootstrap.serve`)."""
