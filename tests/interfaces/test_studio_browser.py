"""Groove Studio end to end in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright
for Python): load, generate 8 grooves, play, edit a hit and hear it in the exported MIDI,
interpolate, drop a MIDI file on Groove, download and re-read a MIDI file, save screenshots.

Without a browser the test is skipped — except under CI=true, where that is a failure. Set
MUSICVAE_SCREENSHOT_DIR to keep the screenshots (docs/studio.png comes from here).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
from pathlib import Path

import pytest
import symusic

from musicvae.interfaces.studio import server
from conftest import clip_events, midi_file, track
from studio_support import drum_midi_bytes, layered_beat, tiny_checkpoints  # noqa: F401 (a fixture)

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def require(what: str, ok: bool) -> None:
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs {what}")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="module")
def browser():
    require(f"Chromium at {CHROMIUM}", CHROMIUM.is_file())
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require("the playwright Python package", False)
    with sync_playwright() as playwright:
        # launch() gives the browser a fresh temporary profile of its own (--user-data-dir).
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def studio_page(browser, devices):
    """A page on a studio serving ``devices``; fails on any JavaScript error."""
    with server.serving(server.create_app(devices)) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(url)
        page.wait_for_function("window.studio && window.studio.ready !== null", timeout=20_000)
        yield page
        context.close()
        assert errors == [], errors


@pytest.fixture(scope="module")
def page(browser):
    with studio_page(browser, server.load_devices()) as page:  # the bundled models, as installed
        yield page


def drop_files(page, selector: str, files: list[tuple[str, bytes]]) -> None:
    """Drop files on the element at ``selector`` as a person would from a file manager."""
    page.evaluate(
        """([selector, files]) => {
            const drop = new DataTransfer();
            for (const [name, data] of files) {
                drop.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name));
            }
            document.querySelector(selector)
                .dispatchEvent(new DragEvent("drop", { dataTransfer: drop, bubbles: true, cancelable: true }));
        }""",
        [selector, [[name, base64.b64encode(data).decode()] for name, data in files]],
    )


def downloaded(page, button) -> symusic.Score:
    with page.expect_download() as info:
        button.click()
    assert info.value.suggested_filename.endswith(".mid")
    return symusic.Score.from_midi(Path(info.value.path()).read_bytes())


def downloaded_notes(page, button) -> list:
    return sorted((n.time, n.pitch, n.velocity) for t in downloaded(page, button).tracks for n in t.notes)


def screenshot(page, tmp_path, name: str, full_page: bool = True) -> Path:
    path = tmp_path / name
    page.screenshot(path=path, full_page=full_page)
    assert path.stat().st_size > 20_000  # a picture, not an empty page
    keep = os.environ.get("MUSICVAE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def test_studio_in_a_browser(page, tmp_path):
    assert page.locator("#error").is_hidden()
    # Devices without a model are greyed out with one line.
    health = page.evaluate("window.studio.health.models")
    for device, info in health.items():
        tab = page.locator(f'[role=tab][data-device="{device}"]')
        assert ("model missing" in tab.inner_text()) == (not info["available"])

    # Generate 8 grooves: 8 grids.
    page.fill("#gen-n", "8")
    page.fill("#gen-seed", "1234")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#gen-results canvas.grid').length === 8")
    assert page.locator("#gen-results .card .sub").first.inner_text() == "seed 1234 · #0"

    # Play: the AudioContext runs and notes are scheduled at audio times.
    first = page.locator("#gen-results .card").first
    first.locator(".play").click()
    page.wait_for_function("studio.audio.context.state === 'running' && studio.audio.scheduled > 0")
    assert "playing" in first.locator(".play").get_attribute("class")
    page.wait_for_timeout(700)  # the playhead moves into the first bar
    screenshot(page, tmp_path, "studio.png", full_page=False)
    # Muting the kick while it plays silences it within the 150 ms the scheduler looks ahead.
    canvas = first.locator("canvas.grid")
    box = canvas.bounding_box()
    label, cell, row = (float(canvas.get_attribute(f"data-{k}")) for k in ("label-width", "cell-width", "row-height"))
    muted_at = page.evaluate("studio.audio.context.currentTime - studio.audio.origin")
    page.mouse.click(box["x"] + 20, box["y"] + 1 + 8.5 * row)  # the "Kick" label
    page.wait_for_timeout(1500)
    page.click("#stop")
    page.mouse.click(box["x"] + 20, box["y"] + 1 + 8.5 * row)  # unmute
    played = page.evaluate("studio.audio.log.map(([when, cls, v]) => [when - studio.audio.origin, cls, v])")
    tensor = page.evaluate("studio.grooves[0].tensor")
    kicks_due = [s * 0.125 for s, r in enumerate(tensor) if r[0] > 0.5 and muted_at + 0.2 < s * 0.125 < muted_at + 1.3]
    assert kicks_due and not [p for p in played if p[0] > muted_at + 0.2 and p[1] == 0]
    # Every note at its exact time, (step − offset/2) × 125 ms at 120 bpm (early ones wrap to the
    # loop's end), and at its velocity.
    played = [p for p in played if p[0] < muted_at]
    expected = sorted(
        (((s - cells[18 + c] / 2) * 0.125) % 8.0, c, max(1, round(cells[9 + c] * 127)))
        for s, cells in enumerate(tensor) for c in range(9) if cells[c] > 0.5
    )  # fmt: skip
    assert len(played) >= 4
    for (when, cls, velocity), (t, c, v) in zip(sorted(played), expected):
        assert abs(when - t) < 1e-6 and (cls, velocity) == (c, v)

    # The Prior select and the Feel spread slider are there only when the model has a fitted prior.
    fitted = health["generate"]["fitted_prior"]
    assert page.locator("#gen-prior").is_visible() == fitted and page.locator("#gen-spread").is_visible() == fitted
    if fitted:
        page.select_option("#gen-prior", "normal")  # changed after generating: ⟳ keeps the card's own settings
    third = page.locator("#gen-results .card").nth(2)  # ⟳ redraws one card: new seed, same index
    third.locator(".again").click()
    page.wait_for_function("!document.querySelectorAll('#gen-results .card .sub')[2].textContent.startsWith('seed 1234 ')")
    assert third.locator(".sub").inner_text().endswith("· #2")
    if fitted:
        midi = base64.b64decode(page.evaluate("studio.grooves[2].serverMidi.base64"))
        assert symusic.Score.from_midi(midi).markers[0].text.endswith("prior=fitted spread=1")
        page.select_option("#gen-prior", "fitted")

    # Toggle a hit (add a kick on an empty step) and find it in the exported MIDI.
    before = downloaded_notes(page, first.locator(".download"))
    step = next(s for s, cells in enumerate(tensor) if cells[0] < 0.5)
    page.mouse.click(box["x"] + label + 1 + (step + 0.5) * cell, box["y"] + 1 + 8.5 * row)  # kick: bottom row
    after = downloaded_notes(page, first.locator(".download"))
    added = sorted(set(after) - set(before))
    assert len(after) == len(before) + 1 and added == [(step * 120, 36, 102)]  # 0.8 × 127, 480 ticks/quarter

    # Feel and mutes reach the export: 0 % dynamics = one velocity; a muted kick is not written.
    page.evaluate("() => { const d = document.querySelector('#dynamics'); d.value = 0; d.dispatchEvent(new Event('change')); }")
    flat = downloaded_notes(page, first.locator(".download"))
    assert len(flat) == len(after) and len({v for _, _, v in flat}) == 1
    page.evaluate("() => { const d = document.querySelector('#dynamics'); d.value = 100; d.dispatchEvent(new Event('change')); }")
    page.mouse.click(box["x"] + 20, box["y"] + 1 + 8.5 * row)  # the "Kick" label
    assert all(pitch != 36 for _, pitch, _ in downloaded_notes(page, first.locator(".download")))
    page.mouse.click(box["x"] + 20, box["y"] + 1 + 8.5 * row)
    assert downloaded_notes(page, first.locator(".download")) == after

    # Dragging the groove out carries its MIDI file as Chromium's DownloadURL.
    url = page.evaluate(
        """() => {
            const drag = new DataTransfer();
            document.querySelector("#gen-results .card .drag")
                .dispatchEvent(new DragEvent("dragstart", { dataTransfer: drag, bubbles: true }));
            return drag.getData("DownloadURL");
        }"""
    )
    kind, name, data = url.split(":", 2)
    assert (kind, name) == ("audio/midi", "groove_1.mid") and data.startswith("data:audio/midi;base64,")
    dragged = symusic.Score.from_midi(base64.b64decode(data.split(",", 1)[1]))
    assert len(dragged.tracks[0].notes) == len(after)  # the edited groove

    # Scroll on a hit, then drag it upwards: louder each time; the hit stays.
    x, y = box["x"] + label + 1 + (step + 0.5) * cell, box["y"] + 1 + 8.5 * row
    page.mouse.move(x, y)
    page.mouse.wheel(0, -100)
    page.wait_for_function(f"Math.abs(studio.grooves[0].tensor[{step}][9] - 0.84) < 1e-9")
    page.mouse.down()
    page.mouse.move(x, y - 12, steps=4)
    page.mouse.up()
    hit, velocity, offset = page.evaluate(f"studio.grooves[0].tensor[{step}].filter((_, k) => k % 9 === 0)")
    assert (hit, offset) == (1, 0) and velocity == pytest.approx(0.84 + 12 / 120)

    # Interpolate groove 1 → groove 2 in 3 steps: a strip of 3 grids.
    cards = page.locator("#gen-results .card")
    cards.nth(0).locator(".pick[data-slot=a]").click()
    cards.nth(1).locator(".pick[data-slot=b]").click()
    page.click('[role=tab][data-device="interpolate"]')
    page.fill("#int-steps", "3")
    page.click("#interpolate")
    page.wait_for_function("document.querySelectorAll('#int-results .strip canvas.grid').length === 3")
    screenshot(page, tmp_path, "studio-interpolate.png")
    drop_files(page, '.slot[data-slot="b"]', [("other.mid", drum_midi_bytes(4, pitch=51))])  # B: a file
    page.wait_for_function("document.querySelector('.slot[data-slot=b] .what').textContent === 'other.mid'")
    page.fill("#int-steps", "2")
    page.click("#interpolate")
    page.wait_for_function("document.querySelectorAll('#int-results .strip canvas.grid').length === 2")

    # Drop a MIDI file on Groove (humanize): input and result side by side.
    page.click('[role=tab][data-device="humanize"]')
    drop_files(page, '.panel[data-panel="humanize"] .drop', [("beat.mid", drum_midi_bytes(2, qpm=96))])
    pair = page.locator('.panel[data-panel="humanize"] .pair .card')
    pair.nth(1).wait_for()
    assert pair.count() == 2 and page.locator("#error").is_hidden()
    assert page.input_value("#bpm") == "96"  # the file's tempo
    result = downloaded_notes(page, pair.nth(1).locator(".download"))
    source = downloaded_notes(page, pair.nth(0).locator(".download"))
    assert len(result) == len(source) == 20  # humanize keeps the notes …
    assert {v for _, _, v in result} != {v for _, _, v in source}  # … and plays them with new dynamics
    screenshot(page, tmp_path, "studio-groove.png")

    # A bad file: one line in the page, and the page keeps working.
    drop_files(page, '.panel[data-panel="humanize"] .drop', [("song.mid", b"PK\x03\x04")])
    page.locator("#error").wait_for()
    assert "zip archive" in page.inner_text("#error .message")


def test_generate_draws_a_new_seed_each_time_unless_one_is_kept(page):
    page.click('[role=tab][data-device="generate"]')
    page.fill("#gen-n", "2")
    page.set_checked("#gen-seed-keep", False)
    seeds = []
    for _ in range(2):
        page.click("#generate")
        page.wait_for_function(f"document.querySelector('#gen-results .sub')?.textContent.startsWith('seed {page.input_value('#gen-seed')} ')")
        seeds.append(page.input_value("#gen-seed"))  # shown, so it can be noted and used again
    assert seeds[0] != seeds[1]
    page.fill("#gen-seed", "77")  # a typed seed is kept
    assert page.is_checked("#gen-seed-keep")
    tensors = []
    for _ in range(2):
        page.click("#generate")
        page.wait_for_function("document.querySelector('#gen-results .sub')?.textContent === 'seed 77 · #0' && studio.grooves.length")
        tensors.append(page.evaluate("studio.grooves.find((g) => g.card.closest('#gen-results')).tensor"))
    assert page.input_value("#gen-seed") == "77" and tensors[0] == tensors[1]


# Where every visible control is.
CONTROL_BOXES = """() => [...document.querySelectorAll("button, input, select")].filter((c) => c.offsetParent)
    .map((c) => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })"""


def test_out_of_range_numbers_show_the_value_used_with_a_notice(page):
    page.click('[role=tab][data-device="generate"]')
    for width in (400, 1280):  # a phone, where every field has a row of its own, and a laptop
        page.set_viewport_size({"width": width, "height": 860})
        for field, typed, used, words in (
            ("#bpm", "1000", "400", "Tempo takes 20–400 bpm; using 400"),
            ("#gen-n", "99", "16", "Variations takes 1–16; using 16"),
            ("#gen-seed", "-5", "0", "Seed takes 0–4294967295; using 0"),
            ("#gen-seed", "1e10", "4294967295", "Seed takes 0–4294967295; using 4294967295"),  # the longest
        ):
            page.fill(field, typed)
            controls = page.evaluate(CONTROL_BOXES)
            page.press(field, "Tab")  # leaving the field settles it
            assert page.input_value(field) == used
            assert page.inner_text("#status.notice") == words
            assert page.evaluate("(s => s.scrollWidth <= s.clientWidth)(document.querySelector('#status'))")  # whole
            assert page.evaluate(CONTROL_BOXES) == controls  # the status line's notice moves nothing
    page.fill("#bpm", "120")
    page.fill("#gen-n", "1")
    page.fill("#gen-seed", "4294967295")  # the CLI's largest seed
    page.click("#generate")
    page.wait_for_function("document.querySelector('#gen-results .sub')?.textContent === 'seed 4294967295 · #0'")
    assert page.locator("#gen-results .card").count() == 1 and page.locator(".notice").count() == 0


def test_a_refused_file_is_not_shown_as_loaded_and_the_error_moves_nothing(page):
    page.click('[role=tab][data-device="humanize"]')
    zone = page.locator('.panel[data-panel="humanize"] .drop')
    drop_files(page, '.panel[data-panel="humanize"] .drop', [("beat.mid", drum_midi_bytes(2))])
    page.wait_for_function("document.querySelector('.panel[data-panel=humanize] .pair .card h3')?.textContent === 'In: beat.mid'")
    assert page.locator("#error").is_hidden()
    tabs = page.locator(".devices").bounding_box()
    drop_files(page, '.panel[data-panel="humanize"] .drop', [("long.mid", drum_midi_bytes(40))])  # over 32 bars
    page.locator("#error").wait_for()
    assert "long.mid is 40 bars long" in page.inner_text("#error .message")
    assert zone.locator("span").inner_text().startswith("long.mid was not used")
    assert page.locator(".devices").bounding_box() == tabs  # the error floats: nothing moves
    page.click("#error .close")
    assert page.locator("#error").is_hidden()


def test_a_per_drum_track_file_asks_for_the_drum_channel_menu(page):
    page.click('[role=tab][data-device="humanize"]')
    drop_files(page, '.panel[data-panel="humanize"] .drop', [("tracks.mid", midi_file([track(clip_events(1)), track(clip_events(2))], 1))])
    page.locator("#error").wait_for()
    message = page.inner_text("#error .message")
    assert "under Drum channel" in message and "--channel" not in message
    page.select_option('.panel[data-panel="humanize"] .channel', "all")  # the same file, read again
    page.wait_for_function("document.querySelector('.panel[data-panel=humanize] .pair .card h3')?.textContent === 'In: tracks.mid'")
    assert page.locator("#error").is_hidden()
    notes = page.locator('.panel[data-panel="humanize"] .file-notes li')
    assert notes.first.inner_text() == "reading all notes (channels 1, 2) as drums"
    assert notes.nth(1).inner_text().startswith("tracks.mid: 24 of 48 notes are layered")  # both tracks' copies


def test_kept_layers_and_other_pitches_are_named_and_downloaded_and_a_tempo_change_keeps_the_marker(page):
    page.click('[role=tab][data-device="humanize"]')
    page.select_option('.panel[data-panel="humanize"] .channel', "auto")
    drop_files(page, '.panel[data-panel="humanize"] .drop', [("daw.mid", layered_beat())])
    page.wait_for_function("document.querySelector('.panel[data-panel=humanize] .pair .card h3')?.textContent === 'In: daw.mid'")
    note = page.locator('.panel[data-panel="humanize"] .file-notes li')
    assert note.count() == 1 and note.inner_text().startswith("daw.mid: 3 of 8 notes are layers or other drums (pitches 35, 39)")
    out = downloaded(page, page.locator('.panel[data-panel="humanize"] .pair .card').nth(1).locator(".download"))
    assert sorted(n.pitch for n in out.tracks[0].notes) == [35, 36, 38, 38, 38, 39, 42, 42]  # every note, as played
    page.set_checked("#humanize-keep", False)  # notes redrawn by the model: nothing kept, nothing to say
    page.wait_for_function("!document.querySelector('.panel[data-panel=humanize] .file-notes li')")
    page.set_checked("#humanize-keep", True)
    note.wait_for()  # the file's tempo is set before the tempo below

    # A sampled groove played at another tempo still says how `musicvae sample --bpm` makes it again.
    page.click('[role=tab][data-device="generate"]')
    page.fill("#gen-n", "1")
    page.click("#generate")
    page.wait_for_function("!document.querySelector('#generate').disabled")
    page.fill("#bpm", "90")
    page.press("#bpm", "Tab")
    score = downloaded(page, page.locator("#gen-results .card .download"))
    assert score.tempos[0].qpm == pytest.approx(90) and score.markers[0].text.startswith("musicvae sample ")
    page.fill("#bpm", "120")
    page.press("#bpm", "Tab")


def test_the_page_fits_narrow_windows_and_the_strip_fits_its_panel(page):
    page.click('[role=tab][data-device="interpolate"]')
    page.fill("#int-steps", "5")
    page.click("#interpolate")
    page.wait_for_function("document.querySelectorAll('#int-results .strip canvas.grid').length === 5")
    strip = page.locator("#int-results .strip").bounding_box()
    for box in page.locator("#int-results .strip .card").evaluate_all("cards => cards.map((c) => c.getBoundingClientRect().right)"):
        assert box <= strip["x"] + strip["width"] + 0.5  # every card whole, none cut at the edge
    page.click('[role=tab][data-device="generate"]')
    try:
        for width, height in ((800, 900), (400, 800)):
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_function(f"document.documentElement.scrollWidth <= {width}")  # no sideways scrolling
            page.wait_for_timeout(200)  # the grids are laid out again after a resize
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            outside = page.evaluate(
                """(width) => [...document.querySelectorAll(".topbar button, .topbar input, .topbar .status, #generate, #gen-seed-keep")]
                    .filter((e) => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > width; }).map((e) => e.id || e.className)""",
                width,
            )
            assert outside == []
            spilled = page.evaluate(
                """() => [...document.querySelectorAll("#gen-results .card")].filter((card) => {
                    const c = card.getBoundingClientRect();
                    return [...card.querySelectorAll("button, a, canvas")].some((e) => e.getBoundingClientRect().right > c.right + 0.5);
                }).length"""
            )
            assert spilled == 0
    finally:
        page.set_viewport_size({"width": 1280, "height": 860})


def test_drumify_taps_hihat_infill_and_groove_transfer(browser, tiny_checkpoints, tmp_path):
    # Small random models stand in for the devices no bundled model covers yet.
    with studio_page(browser, server.load_devices(tiny_checkpoints)) as page:
        page.fill("#bpm", "300")  # short bars: the tap take lasts a second or two
        page.dispatch_event("#bpm", "change")
        page.click('[role=tab][data-device="drumify"]')
        drop_files(page, '.panel[data-panel="drumify"] .drop', [("beat.mid", drum_midi_bytes(2))])
        page.locator('.panel[data-panel="drumify"] .pair .card').nth(1).wait_for()
        page.select_option("#tap-bars", "1")
        page.click("#tap-record")
        page.wait_for_function("document.querySelector('#tap-record').textContent.startsWith('Recording')")
        for _ in range(4):
            page.keyboard.press("Space")
            page.wait_for_timeout(150)
        pair = page.locator('.panel[data-panel="drumify"] .pair .card')
        page.wait_for_function("studio.grooves.some((g) => g.title === 'In: your taps')", timeout=10_000)
        taps = page.evaluate("studio.grooves.find((g) => g.title === 'In: your taps').tensor")
        assert len(taps) == 16 and 1 <= sum(row[1] for row in taps) <= 4
        assert page.inner_text('.panel[data-panel="drumify"] .drop span') == "or click to choose"  # no file now
        screenshot(page, tmp_path, "studio-drumify.png")
        assert pair.nth(1).locator(".sub").text_content() == "seed 0"
        pair.nth(1).locator(".again").click()  # ⟳: another take of the same taps
        page.wait_for_function(
            "document.querySelector('.panel[data-panel=\"drumify\"] .pair .card:nth-child(2) .sub').textContent !== 'seed 0'"
        )
        assert pair.count() == 2 and page.locator("#error").is_hidden()

        page.click('[role=tab][data-device="infill-hihat"]')
        drop_files(page, '.panel[data-panel="infill-hihat"] .drop', [("beat.mid", drum_midi_bytes(2))])
        page.locator('.panel[data-panel="infill-hihat"] .pair .card').nth(1).wait_for()

        page.click('[role=tab][data-device="groove-transfer"]')
        drop_files(page, '.drop[data-field="hits"]', [("score.mid", drum_midi_bytes(2, pitch=36))])
        drop_files(page, '.drop[data-field="groove"]', [("feel.mid", drum_midi_bytes(2))])
        cards = page.locator('.panel[data-panel="groove-transfer"] .pair .card')
        cards.nth(2).wait_for()
        assert cards.count() == 3 and page.locator("#error").is_hidden()
        screenshot(page, tmp_path, "studio-transfer.png")
