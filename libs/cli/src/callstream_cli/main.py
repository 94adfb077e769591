"""The `callstream` command: one entry point for operators (topics, Kafka, doctor, up) and each service's CLI."""

from __future__ import annotations

import typer

from callstream_cli import doctor, topics_cmd

app = typer.Typer(help="Callstream: contact-center operations platform.", no_args_is_help=True,
                  add_completion=False)
app.add_typer(topics_cmd.app, name="topics")
app.command("doctor")(doctor.doctor)


if __name__ == "__main__":
    app()
