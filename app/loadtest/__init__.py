"""The load tester behind `coplay loadtest` (the CLI is app/commands/loadtest.py).

arrival         when each participant starts (burst, ramp:SECONDS, poisson:RATE)
cohort          participants as threads of one process, or spread over worker processes
wire            --mode wire: protocol-level participants on one asyncio loop (wire_match: one seat's
                packets and the match's lockstep re-simulation; wire_socket: the match channel on a raw
                socket; wire_transport: Socket.IO, and the aiohttp match channel app.agent uses)
selfcheck       the generator's own tick lateness, loop lag and CPU, and whether it was the bottleneck
server_metrics  scraping the server's /metrics during the run
summary         percentiles, the JSON summary and its text form
run             the whole run: schedule, deadline, progress, timeline, summary
"""
