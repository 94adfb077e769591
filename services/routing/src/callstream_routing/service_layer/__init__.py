"""The router's use cases: commands applied, logged and published (`router.Router`), leadership and snapshots
(`leadership`), the heap kept off the cyclic collector (`heap`)."""
