"""`python -m callstream_kpi`: the KPI stream worker with its API and wallboard (HTTPS when TLS_ENABLED)."""

from callstream_kpi.bootstrap import main

main()
