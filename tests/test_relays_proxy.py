"""docs/scaling.md's reverse proxy, run: Debian's nginx on loopback routes `/relay/r1/` to a relay and
everything else to the coordinator, with the WebSocket upgrade on both (TLS termination is not part of
this test). Real nginx, redis-server, coordinator and relay; headless participants reach everything
through the proxy's one origin."""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from tests.relay_fixtures import SECRET, Relay, RedisServer, redis_server  # noqa: F401  (a fixture)
from tests.server_fixtures import Server, free_port, replay_recording, run_together
from tests.test_relays import experiment_file, pair

DOCS = Path(__file__).resolve().parents[1] / "docs" / "scaling.md"


def docs_locations() -> str:
    """The `map` block and the proxy settings common to every location, as docs/scaling.md gives them."""
    text = DOCS.read_text()
    config = text.split("```nginx", 1)[1].split("```", 1)[0]
    upgrade_map = re.search(r"map \$http_upgrade.*?\n}\n", config, re.S)
    common = re.findall(r"^    (proxy_[a-z_]+ .*;)$", config, re.M)
    assert upgrade_map and common, "docs/scaling.md lost its nginx example"
    return upgrade_map.group(0) + "\n".join(common)


class Nginx:
    def __init__(self, folder: Path, coordinator_port: int, relay_port: int) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            pytest.skip("nginx is not installed (apt-get install nginx-light)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        shared = docs_locations().split("\n}\n", 1)
        conf = folder / "nginx.conf"
        conf.write_text(f"""daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;
    {shared[0]}
}}
    server {{
        listen 127.0.0.1:{self.port};
        {shared[1]}
        location /relay/r1/ {{ proxy_pass http://127.0.0.1:{relay_port}/; }}
        location /         {{ proxy_pass http://127.0.0.1:{coordinator_port}; }}
    }}
}}
""")
        self.process = subprocess.Popen([binary, "-p", str(folder), "-c", str(conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(self.url + "/health", timeout=1)
                return
            except requests.RequestException:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start: {(folder / 'error.log').read_text()}")
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def proxied(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Nginx, Server, Relay]]:  # noqa: F811
    coordinator = Server(["serve", str(experiment_file(tmp_path, 300)), "--redis", redis_server.url],
                         tmp_path / "data", env=SECRET)
    relay_port = free_port()
    nginx = Nginx(tmp_path / "nginx", coordinator.port, relay_port)
    relay = Relay("r1", coordinator.url, redis_server, "relayed", coordinator.data_dir, port=relay_port,
                  public_url=f"ws://127.0.0.1:{nginx.port}/relay/r1/match-ws")
    yield nginx, coordinator, relay
    relay.stop()
    nginx.stop()
    coordinator.stop()


def test_participants_play_through_the_proxy_on_one_origin(proxied: tuple[Nginx, Server, Relay]) -> None:
    nginx, coordinator, relay = proxied
    assert requests.get(nginx.url + "/health", timeout=5).json()["relays"] == 1
    starts: list[dict[str, Any]] = []
    behind = Server.__new__(Server)   # the participants' view: the proxy's URL
    behind.url = nginx.url
    results = run_together(pair(behind, starts, 80), timeout=90)
    for result in results:
        assert result.completed and result.ok and not result.errors, result.to_json()
        assert result.packets_by_path.get("channel", 0) > 100
    assert {s["channel"]["url"] for s in starts} == {f"ws://127.0.0.1:{nginx.port}/relay/r1/match-ws"}
    assert replay_recording(coordinator, "relayed", starts[0]["match"]).ok
    assert "Traceback" not in coordinator.log_path.read_text() + relay.log()
