"""`coplay relay`: one relay process (eventlet), serving the match channel of the matches placed on it.

It asks the coordinator's /health which experiment it serves (the Redis namespace), listens on
HOST:PORT (port 0: any free one), registers in Redis with the URL participants reach its channel at,
and runs the coordinator's commands until stopped. SIGTERM (or Ctrl-C) ends its matches as
`interrupted` (their recordings go to the coordinator as at any end), takes it out of the registry
and exits. Beside the channel it serves GET /health (JSON) and GET /metrics: the Prometheus text of
its one `Metrics` (the coordinator's class), fed by every room on it (process CPU, the relay-time
histogram, packets relayed, matches and channels open).
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Iterable, cast

from app.data.modes import make_folder
from app.live.channel import CHANNEL_PATH
from app.live.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from app.relay.bus import Bus, RelayError, relay_secret, this_host
from app.relay.worker import RelayHost
from app.live.tickets import Tickets
from app.web.match_channel import MatchChannelEndpoint

COORDINATOR_WAIT_S = 60.0
STOP_WITHIN_S = 10


def coordinator_experiment(url: str, wait_s: float = COORDINATOR_WAIT_S) -> str:
    """The experiment id the coordinator at `url` serves (its /health), waiting up to `wait_s` for it to start."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=5) as response:
                return str(json.load(response)["experiment"])
        except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
            if time.monotonic() > deadline:
                raise RelayError(f"the coordinator at {url} did not answer /health in {wait_s:g} s ({error}); "
                                 "start `coplay serve ... --redis URL` first, or fix --coordinator") from None
            time.sleep(0.5)


def run_relay(coordinator: str, redis_url: str, host: str, port: int, data_dir: str,
              public_url: str | None = None, relay_id: str | None = None) -> None:
    """Serve as a relay until SIGTERM or SIGINT (the caller has monkey-patched for eventlet)."""
    import engineio
    import eventlet
    import eventlet.wsgi

    experiment = coordinator_experiment(coordinator)
    bus = Bus(redis_url, experiment)
    tickets = Tickets(relay_secret())
    listener = eventlet.listen((host, port))
    port = listener.getsockname()[1]
    relay_id = relay_id or f"{this_host()}-{host}-{port}"
    url = public_url or f"ws://{host}:{port}{CHANNEL_PATH}"
    experiment_dir = os.path.join(data_dir, experiment)
    make_folder(data_dir)
    make_folder(experiment_dir)
    eio = engineio.Server(async_mode="eventlet")
    relay = RelayHost(bus, relay_id, url, experiment_dir, tickets, eio.start_background_task, eio.sleep)

    def stop(*_: Any) -> None:
        relay.stopping = True   # run_ticks ends the matches, leaves the registry and exits
        signal.alarm(STOP_WITHIN_S)   # or SIGALRM's default action ends the process, whatever hangs

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    eio.start_background_task(relay.run_ticks)
    eio.start_background_task(relay.run_commands)
    eio.start_background_task(relay.run_heartbeats)
    eio.start_background_task(relay.run_sender)
    eio.start_background_task(relay.run_lag_probe)
    relay.metrics.matches_active.set_function(lambda: len(relay.rooms))
    relay.metrics.channels_open.set_function(lambda: len(relay.channels))
    app = MatchChannelEndpoint(_with_metrics(relay, _health(relay)), cast(Any, relay), eio)
    print(f"coplay relay {relay_id}: match channel at {url} for {coordinator} (experiment {experiment!r}); "
          f"recordings in {experiment_dir}", flush=True)
    eventlet.wsgi.server(listener, app, log_output=False, max_size=100_000)


def _health(relay: RelayHost) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/health":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"A coplay relay serves only its match channel, /health and /metrics.\n"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"ok": True, "relay": relay.id, "matches": len(relay.rooms)}).encode()]

    return app


def _with_metrics(relay: RelayHost, other: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """GET /metrics: the relay's Prometheus text; every other path goes to `other`."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return other(environ, start_response)
        start_response("200 OK", [("Content-Type", METRICS_CONTENT_TYPE)])
        return [relay.metrics.render().encode()]

    return app
