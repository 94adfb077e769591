"""`callstream topics apply|list|doc`."""

from __future__ import annotations

import typer

from callstream_core.settings import CoreSettings

app = typer.Typer(help="The topic registry: create topics, list them, render docs/topics.md.", no_args_is_help=True)


@app.command("apply")
def apply(bootstrap: str = typer.Option(None, help="host:port; default KAFKA_BOOTSTRAP_SERVERS")) -> None:
    """Create every registered topic and its DLQ that does not exist yet."""
    from callstream_core.kafka import apply_topics

    created = apply_topics(bootstrap or CoreSettings().kafka_bootstrap_servers)
    typer.echo(f"created {len(created)} topics" + (": " + ", ".join(created) if created else " (all existed)"))


@app.command("list")
def list_(bootstrap: str = typer.Option(None, help="host:port; default KAFKA_BOOTSTRAP_SERVERS")) -> None:
    """List the broker's topics with partition counts, marking those the registry does not know."""
    from callstream_core.kafka import list_topics
    from callstream_core.topics import BY_NAME, DLQ_SUFFIX

    for name, partitions in sorted(list_topics(bootstrap or CoreSettings().kafka_bootstrap_servers).items()):
        known = name in BY_NAME or name.removesuffix(DLQ_SUFFIX) in BY_NAME
        typer.echo(f"{name:32} {partitions:3} partitions{'' if known else '  (not in the registry)'}")


@app.command("doc")
def doc() -> None:
    """Print docs/topics.md (key, contract, partitions, retention and an example message per topic)."""
    from callstream_core.topics_doc import render

    typer.echo(render(), nl=False)
