"""Does the trajectory scrubber of notebooks/07_trajectory.ipynb really work in a browser?

Starts JupyterLab (random localhost port, random token) on a temporary copy of the notebook,
drives headless Chromium over the DevTools protocol (a tiny CDP client on websocket-client),
starts every cell (without waiting for the run: notebook 07 may take minutes, longer than one
DevTools reply may), waits for the widget (a bound that names what it waited for and how far the
notebook got), then drags the step slider with real mouse events and checks that the status
line (t, ᾱ_t, note F1) and the picture (screenshots of the image widget) change; finally presses
Play and checks that the steps advance on their own. It returns the status lines it saw, read
as numbers (:func:`parse_status`).

    .venv/bin/python tests/browser/check_widget.py [--keep] [--timeout 300]

Exit status 0 when the widget works. Needs Debian's ``chromium`` (``apt-get install chromium``).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket  # websocket-client

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "07_trajectory.ipynb"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000"]


class WidgetCheckError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise WidgetCheckError("no Chromium found: apt-get install chromium")


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            time.sleep(0.5)
    raise WidgetCheckError(f"{url} did not answer within {timeout:.0f} s")


class CDP:
    """The smallest useful Chrome DevTools Protocol client: send a command, wait for its reply
    (each reply within :data:`REPLY_TIMEOUT` seconds: long waits poll, see :meth:`wait_js`)."""

    REPLY_TIMEOUT = 60

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=self.REPLY_TIMEOUT, suppress_origin=True)
        self.next_id = 0

    def __call__(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise WidgetCheckError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str, await_promise: bool = True):
        """The value of ``expression``; with ``await_promise`` that of the promise it returns
        (which must settle within one reply's timeout)."""
        res = self("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in res:
            raise WidgetCheckError(f"JS error in {expression[:80]!r}: {res['exceptionDetails']}")
        return res["result"].get("value")

    def wait_js(self, expression: str, timeout: float, what: str, progress: str | None = None):
        """Poll ``expression`` until it is truthy; WidgetCheckError naming ``what`` (and the value of
        the ``progress`` expression, e.g. how many cells have run) after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.5)
        where = f" ({self.js(progress)})" if progress else ""
        raise WidgetCheckError(f"timed out after {timeout:.0f} s waiting for {what}{where}")

    def close(self):
        self.ws.close()


RUN_ALL = "window.jupyterapp.commands.execute('notebook:run-all-cells'), true"
CELLS_RUN = """(() => { const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt'))
  .map(e => e.innerText.trim()); const running = prompts.findIndex(t => t.includes('*'));
  return `${prompts.filter(t => /\\d/.test(t)).length} of ${prompts.length} code cells run` +
         (running >= 0 ? `, code cell ${running + 1} running` : '') })()"""


def run_all_cells(cdp: CDP) -> None:
    """Start every cell: the command's promise settles only when the whole notebook has run, so it
    is not awaited (a slow machine would outlast the reply's timeout); the caller waits for what
    the cells draw."""
    cdp.js(RUN_ALL, await_promise=False)


LABEL = "(() => { const e = document.querySelector('.diffroll-trajectory-label'); return e ? e.innerText : null })()"
RECT = """(sel => { const e = document.querySelector(sel); if (!e) return null; e.scrollIntoView({block: 'center'});
  const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height} })"""


def rect(cdp: CDP, selector: str) -> dict:
    r = cdp.js(f"{RECT}({json.dumps(selector)})")
    if not r or r["width"] == 0:
        raise WidgetCheckError(f"{selector} is not on the page")
    return r


def picture_hash(cdp: CDP) -> str:
    r = rect(cdp, ".diffroll-trajectory-image")
    shot = cdp("Page.captureScreenshot", format="png",
               clip={"x": r["x"], "y": r["y"], "width": r["width"], "height": r["height"], "scale": 1})
    return hashlib.sha256(base64.b64decode(shot["data"])).hexdigest()


def drag(cdp: CDP, x0: float, y0: float, x1: float, y1: float, steps: int = 12) -> None:
    cdp("Input.dispatchMouseEvent", type="mouseMoved", x=x0, y=y0)
    cdp("Input.dispatchMouseEvent", type="mousePressed", x=x0, y=y0, button="left", clickCount=1)
    for k in range(1, steps + 1):
        cdp("Input.dispatchMouseEvent", type="mouseMoved", x=x0 + (x1 - x0) * k / steps,
            y=y0 + (y1 - y0) * k / steps, button="left", buttons=1)
        time.sleep(0.03)
    cdp("Input.dispatchMouseEvent", type="mouseReleased", x=x1, y=y1, button="left", clickCount=1)


def click(cdp: CDP, selector: str) -> None:
    r = rect(cdp, selector)
    x, y = r["x"] + r["width"] / 2, r["y"] + r["height"] / 2
    cdp("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    cdp("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
    cdp("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1)


STATUS = re.compile(r"step\s*(?P<step>\d+)/(?P<steps>\d+)\s+t\s*=\s*(?P<t>\d+)\s+ᾱ_t\s*=\s*(?P<alpha_bar>[\d.]+)"
                    r"(?:\s+note F1:\s*x̂0\s*(?P<f1_x0>[\d.]+),\s*x_t\s*(?P<f1_xt>[\d.]+))?")


def parse_status(text: str) -> dict:
    """The scrubber's status line ("step i/N  t = …  ᾱ_t = …  note F1: x̂0 …, x_t …") as numbers."""
    m = STATUS.search(text.replace("\xa0", " "))
    if m is None:
        raise WidgetCheckError(f"unreadable status line {text!r}")
    return {k: (None if v is None else float(v) if "." in v else int(v)) for k, v in m.groupdict().items()}


def check(timeout: float = 300.0, keep: bool = False, log=print) -> dict:
    """Run the whole check; returns what it saw, raises WidgetCheckError when the widget fails."""
    work = Path(tempfile.mkdtemp(prefix="diffroll-widget-"))
    procs: list[subprocess.Popen] = []
    try:
        nb_dir = work / "notebooks"
        nb_dir.mkdir()
        shutil.copy(NOTEBOOK, nb_dir / NOTEBOOK.name)
        lab_port, cdp_port, token = free_port(), free_port(), secrets.token_hex(16)
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(work / "runtime"), JUPYTER_CONFIG_DIR=str(work / "config"),
                   MPLCONFIGDIR=str(work / "mpl"), IPYTHONDIR=str(work / "ipython"), PYTHONUNBUFFERED="1")
        jupyter = Path(sys.executable).with_name("jupyter")
        cmd = [str(jupyter), "lab", "--no-browser", f"--port={lab_port}", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={token}", f"--notebook-dir={nb_dir}",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        lab_log = open(work / "jupyterlab.log", "w")
        procs.append(subprocess.Popen(cmd, cwd=nb_dir, env=env, stdout=lab_log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
        base = f"http://127.0.0.1:{lab_port}"
        wait_http(f"{base}/api/status?token={token}", 90)
        log(f"JupyterLab up at {base}")

        url = f"{base}/lab/tree/{NOTEBOOK.name}?token={token}&reset"
        chrome = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={work / 'chromium'}",
                  f"--remote-debugging-port={cdp_port}", "--remote-allow-origins=*", url]
        procs.append(subprocess.Popen(chrome, stdout=open(work / "chromium.log", "w"), stderr=subprocess.STDOUT,
                                      start_new_session=True))
        wait_http(f"http://127.0.0.1:{cdp_port}/json/version", 60)
        pages = [t for t in json.loads(urllib.request.urlopen(f"http://127.0.0.1:{cdp_port}/json/list").read())
                 if t["type"] == "page"]
        cdp = CDP(pages[0]["webSocketDebuggerUrl"])
        cdp("Page.enable")
        cdp("Runtime.enable")

        cdp.wait_js("!!(window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell'))", 120,
                    "JupyterLab to open the notebook")
        cdp.wait_js("""(() => { const p = window.jupyterapp.shell.currentWidget;
            return !!(p && p.sessionContext && p.sessionContext.isReady && p.sessionContext.session &&
                      p.sessionContext.session.kernel &&
                      p.sessionContext.session.kernel.connectionStatus === 'connected') })()""", 120, "the kernel")
        log("notebook open, kernel ready; running all cells")
        run_all_cells(cdp)
        cdp.wait_js(f"{LABEL} !== null && !!document.querySelector('.diffroll-trajectory-image')", timeout,
                    "the scrubber widget to render", progress=CELLS_RUN)
        errors = cdp.js("Array.from(document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.stderr\"], .jp-RenderedText[data-mime-type=\"application/vnd.jupyter.error\"]')).map(e => e.innerText.slice(0, 300))")
        if any("Error" in e for e in errors or []):
            raise WidgetCheckError(f"the notebook raised: {errors}")
        time.sleep(1.0)
        label0, pic0 = cdp.js(LABEL), picture_hash(cdp)
        log(f"before: {label0!r}")

        handle = rect(cdp, ".diffroll-step-slider .noUi-handle")
        track = rect(cdp, ".diffroll-step-slider .noUi-target")
        y = handle["y"] + handle["height"] / 2
        drag(cdp, handle["x"] + handle["width"] / 2, y, track["x"] + track["width"] * 0.6, y)
        cdp.wait_js(f"{LABEL} !== {json.dumps(label0)}", 30, "the status line to change after the drag")
        time.sleep(1.0)
        label1, pic1 = cdp.js(LABEL), picture_hash(cdp)
        log(f"after drag: {label1!r}")
        if pic1 == pic0:
            raise WidgetCheckError("the slider moved but the picture did not change")

        click(cdp, ".widget-play button")
        cdp.wait_js(f"{LABEL} !== {json.dumps(label1)}", 30, "Play to advance the steps")
        time.sleep(1.5)
        label2, pic2 = cdp.js(LABEL), picture_hash(cdp)
        log(f"after play: {label2!r}")
        if pic2 == pic1:
            raise WidgetCheckError("Play advanced the steps but the picture did not change")
        cdp.close()
        return {"before": label0, "after_drag": label1, "after_play": label2,
                "status": [parse_status(label) for label in (label0, label1, label2)],
                "pictures": [pic0[:12], pic1[:12], pic2[:12]]}
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=300, help="seconds to wait for the notebook to run")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs) for debugging")
    args = ap.parse_args(argv)
    try:
        seen = check(args.timeout, args.keep)
    except WidgetCheckError as err:
        print(f"FAIL: {err}", file=sys.stderr)
        return 1
    print("OK: the slider and the Play button redraw the trajectory:", json.dumps(seen, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
