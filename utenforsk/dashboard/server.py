"""Serve the dashboard on loopback with Solara's server (uvicorn), offline.

The page's JavaScript and CSS come from installed packages: Solara's own bundles and the
``solara-assets`` package (its CDN files, installed under ``<prefix>/share/solara/cdn``). Solara
fetches from a CDN whatever is not there; here that fetch is replaced by an error, so the page
never reaches the internet. Solara's widgets ask for some files by major version (``vega@5``);
:func:`asset_dir` links those names to the installed exact versions. Telemetry is off.
"""

from __future__ import annotations

import os
import re
import hashlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

from utenforsk.errors import UserError

#: names Solara's Vega-Lite widget asks for -> the package solara-assets installs
ALIASES = {"vega@5": "vega@", "vega-lite@5": "vega-lite@", "vega-embed@6": "vega-embed@"}


def installed_cdn() -> Path:
    return Path(sys.prefix) / "share" / "solara" / "cdn"


def asset_dir(target: Path | None = None) -> Path:
    """A folder of links to the installed CDN files, plus the major-version names (see ALIASES)."""
    src = installed_cdn()
    if not src.is_dir() or not any(src.iterdir()):
        raise UserError("the dashboard's offline assets are not installed", key="solara-assets",
                        value=str(src), allowed="pip install solara-assets (the project's dependencies)")
    if target is None:  # one folder of links per installed asset folder, reused by later starts
        key = hashlib.sha256(str(src.resolve()).encode()).hexdigest()[:12]
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        target = cache / "utenforsk" / f"dashboard-cdn-{key}"
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)

    def link(name: str, to: Path) -> None:
        dst = target / name
        if dst.is_symlink() and os.readlink(dst) != str(to):  # left by another install: replace
            dst.unlink()
        if dst.is_symlink() or dst.exists():
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            dst.symlink_to(to, target_is_directory=to.is_dir())
        except FileExistsError:  # another server linked it meanwhile
            pass

    for entry in src.iterdir():
        if entry.name.startswith("@") and entry.is_dir():  # scoped packages: link one level down
            for sub in entry.iterdir():
                link(f"{entry.name}/{sub.name}", sub)
        else:
            link(entry.name, entry)
    for alias, prefix in ALIASES.items():
        major = alias.rsplit("@", 1)[1]
        found = sorted((p for p in src.iterdir() if p.name.startswith(prefix) and
                        re.fullmatch(re.escape(prefix) + major + r"\.\d+\.\d+", p.name)), key=lambda p: p.name)
        if found:
            link(alias, found[-1])
    return target


def check_port(host: str, port: int) -> None:
    """One UserError if the port cannot be bound (taken, or not allowed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen there: {exc.strerror or exc}", key="--port", value=port,
                            allowed="a free port, 1024-65535 (or 0 for any free port)") from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a dashboard server started in its own process group (``start_new_session=True``):
    SIGTERM (uvicorn shuts down cleanly), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _offline(url):  # replaces solara.server.cdn_helper.fetch_from_cdn
    raise RuntimeError(f"utenforsk dashboard is offline: {url} is not in the installed assets")


def configure(host: str = "127.0.0.1", port: int = 8765, experiment: Path | None = None) -> Path:
    """Set Solara up for this process: our app, offline assets, no telemetry, production mode.
    Returns the asset folder."""
    cdn = asset_dir()
    os.environ["SOLARA_ASSETS_PROXY"] = "True"
    os.environ["SOLARA_ASSETS_PROXY_CACHE_DIR"] = str(cdn)
    os.environ["SOLARA_TELEMETRY_MIXPANEL_ENABLE"] = "False"
    os.environ["SOLARA_APP"] = "utenforsk.dashboard.app"
    os.environ["SERVER_NAME"], os.environ["SERVER_PORT"] = host, str(port)
    if experiment is not None:
        os.environ["UTENFORSK_DASHBOARD_EXPERIMENT"] = str(Path(experiment).resolve())
    import solara.server.settings as ssettings
    import solara.settings

    solara.settings.assets.proxy = True
    ssettings.assets.proxy_cache_dir = cdn
    ssettings.telemetry.mixpanel_enable = False
    ssettings.main.mode = "production"
    import solara.server.cdn_helper as cdn_helper

    cdn_helper.fetch_from_cdn = _offline
    return cdn


def serve(host: str = "127.0.0.1", port: int = 8765, experiment: Path | None = None,
          log_level: str = "warning", on_ready=None) -> None:
    """Run the server until interrupted (Ctrl-C or SIGTERM)."""
    configure(host, port, experiment)
    import uvicorn

    config = uvicorn.Config("solara.server.starlette:app", host=host, port=port, log_level=log_level,
                            access_log=False, ws_ping_interval=None)
    server = uvicorn.Server(config)
    if on_ready is not None:
        import threading

        def wait():
            import time
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                on_ready()

        threading.Thread(target=wait, daemon=True).start()
    server.run()
