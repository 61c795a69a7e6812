"""The load tester behind `coplay loadtest` (the CLI is app/commands/loadtest.py).

arrival         when each participant starts (burst, ramp:SECONDS, poisson:RATE)
cohort          participants as threads of one process, or spread over worker processes
server_metrics  scraping the server's /metrics during the run
summary         percentiles, the JSON summary and its text form
run             the whole run: schedule, deadline, progress, timeline, summary
"""
