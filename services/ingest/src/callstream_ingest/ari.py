"""`python -m callstream_ingest.ari`: the ARI bridge's process (`entrypoints.ari_bridge`; the bridge's code lives in
the layers: `domain/ari_*.py`, `adapters/ari_rest.py`, `service_layer/ari_bridge.py`)."""

from callstream_ingest.entrypoints.ari_bridge import main

if __name__ == "__main__":
    main()
