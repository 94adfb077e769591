"""The `callstream` command: one entry point for operators (topics, Kafka, doctor, up) and each service's CLI."""

from __future__ import annotations

import typer

from callstream_cli import (
    asterisk_cmd,
    doctor,
    forecast_cmd,
    kafka_cmd,
    kpi_cmd,
    plan_cmd,
    replay_cmd,
    simulate_cmd,
    staffing_cmd,
    targets_cmd,
    topics_cmd,
    up,
)

app = typer.Typer(help="Callstream: contact-center operations platform.", no_args_is_help=True,
                  add_completion=False)
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(kafka_cmd.app, name="kafka")
app.add_typer(replay_cmd.app, name="replay")
app.add_typer(asterisk_cmd.app, name="asterisk")
app.add_typer(plan_cmd.app, name="plan")
app.add_typer(targets_cmd.app, name="targets")
app.command("doctor")(doctor.doctor)
app.command("up")(up.up)
app.command("kpi")(kpi_cmd.kpi)
app.command("simulate")(simulate_cmd.simulate)
app.command("staffing")(staffing_cmd.staffing)
app.command("forecast")(forecast_cmd.forecast)


if __name__ == "__main__":
    app()
