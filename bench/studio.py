"""Groove Studio's speed on this machine, with the bundled models, over real localhost HTTP.

    python bench/studio.py [--repeats 30] [--page-loads 5]

* ``generate8_ms_*``: the page's Generate button as an HTTP round trip — POST /api/sample with
  n=8 (a new seed each time), the JSON response read and parsed by an httpx client. Goal: median
  ≤ 150 ms on the 2-core CPU.
* ``model_sample8_ms_median_*``: generate.sample alone for the same 8 grooves, in this process,
  called from the main thread and from a worker thread (where the server calls it): the part of
  the round trip the model takes (the rest is HTTP, JSON and MIDI writing). On the loaded 2-core
  machine (load average 8) the main thread took 450 ms and a worker thread 16 ms, about what the
  main thread takes after torch.set_num_threads(1) (21 ms): the main thread's two torch threads
  seem to wait on each other while other processes hold the cores (not investigated further).
* ``page_first_playable_ms_*``: headless Chromium (/usr/bin/chromium) opens the page in a fresh
  context, and the time from navigation start until the page has decoded the drum samples and
  drawn its first generated grooves (``window.studio.ready``, what a musician waits for before ▶
  works). Goal ≤ 1000 ms. Skipped, with a line saying so, without Chromium.

Prints ``name=value`` lines, the headline (median Generate round trip) last.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from musicvae import generate
from musicvae.interfaces.studio import server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def model_times(model, repeats: int) -> list[float]:
    """Milliseconds per generate.sample of 8 grooves in the calling thread, after 3 warm-ups."""
    times = []
    for k in range(repeats + 3):
        start = time.perf_counter()
        generate.sample(model, 8, temperature=1.0, seed=k)
        times.append((time.perf_counter() - start) * 1000)
    return times[3:]


def generate_round_trips(url: str, repeats: int) -> list[float]:
    """Milliseconds per POST /api/sample (n=8), after 3 warm-up calls."""
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for k in range(repeats + 3):
            start = time.perf_counter()
            reply = client.post("/api/sample", json={"n": 8, "temperature": 1.0, "seed": k, "bpm": 120})
            grooves = reply.json()["grooves"]
            elapsed = (time.perf_counter() - start) * 1000
            assert reply.status_code == 200 and len(grooves) == 8
            if k >= 3:
                times.append(elapsed)
    return times


def page_loads(url: str, count: int) -> list[float]:
    """Milliseconds from navigation start to the first playable groove, one fresh context each."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        for _ in range(count + 1):  # the first load warms the browser's caches of its own code
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("window.studio && window.studio.ready !== null", timeout=30_000)
            times.append(page.evaluate("window.studio.ready"))
            context.close()
        browser.close()
    return times[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--page-loads", type=int, default=5)
    args = parser.parse_args()

    devices = server.load_devices()
    model = devices["generate"].model
    in_main = model_times(model, args.repeats)
    with ThreadPoolExecutor(1) as pool:  # where the server runs the model
        in_worker = pool.submit(model_times, model, args.repeats).result()
    with server.serving(server.create_app(devices)) as url:
        trips = generate_round_trips(url, args.repeats)
        print(f"cpu_count={os.cpu_count()}")
        print(f"load_average_1min={os.getloadavg()[0]:.2f}")
        print(f"model_sample8_ms_median_main_thread={statistics.median(in_main):.1f}")
        print(f"model_sample8_ms_median_worker_thread={statistics.median(in_worker):.1f}")
        print(f"generate8_ms_p90={statistics.quantiles(trips, n=10)[-1]:.1f}")
        if CHROMIUM.is_file():
            loads = page_loads(url, args.page_loads)
            print(f"page_first_playable_ms_max={max(loads):.0f}")
            print(f"page_first_playable_ms_median={statistics.median(loads):.0f}")
        else:
            print("page_first_playable_ms_median=skipped (no /usr/bin/chromium)")
        print(f"generate8_ms_median={statistics.median(trips):.1f}")


if __name__ == "__main__":
    main()
