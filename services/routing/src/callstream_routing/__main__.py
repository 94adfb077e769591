"""`python -m callstream_routing`: the Router gRPC service (metrics on a separate HTTP port)."""

from callstream_routing.bootstrap import main

main()
