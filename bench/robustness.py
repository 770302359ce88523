"""Robustness battery: adversarial MIDI files and bad arguments through the real CLI.

Every case runs ``python -m musicvae …`` in its own subprocess and is classified by how it ends:

* ``clean``     — exit 1 with exactly one ``error: …`` line (stderr; ``inspect`` reports on stdout);
* ``ok``        — exit 0, no traceback;
* ``usage``     — exit 2: click's own usage message (an argument that is not a number at all);
* ``traceback`` — anything else: a traceback, a crash, another exit code;
* ``timeout``   — still running after --timeout seconds (killed).

A case that fails must leave its output folder empty (no partial file, no ``.tmp``); otherwise it
counts as ``left_files``. Peak memory (max RSS) and wall time are measured per subprocess with
``os.wait4``. Long-length inputs (files spanning thousands of bars, the GMD's longest take, a
0.9 MB file of 114,000 notes) are reported separately: no command may use more than about 1 GB
or 15 s on an input under 1 MB.

    python bench/robustness.py [--gmd DIR] [--mutations 20] [--jobs 2]

Prints ``name=value`` lines, the headline last. Inputs are built with the test suite's MIDI
helpers (tests/conftest.py); GMD mutations are seeded, so every run tries the same bytes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import drum_note, smf, tempo_event, vlq  # noqa: E402

BAR = 4 * 480  # ticks of a 4/4 bar at 480 ticks per quarter
PULSE = [drum_note(0 if i == 0 else 480 - 60, 36 + 2 * (i % 2)) for i in range(16)]  # 4 bars of kick/snare


@dataclass
class Case:
    name: str
    args: list[str]
    long: bool = False  # an adversarial long-length input (memory and time are reported)


@dataclass
class Result:
    case: Case
    outcome: str
    seconds: float
    cpu_seconds: float  # user + system: what the case costs on an idle machine, whatever the load now
    max_rss_mb: float
    message: str


# ------------------------------------------------------------------------------------------------
# Inputs


def dense(bars: int, pitches=(36, 38, 42, 46, 45, 48, 49)) -> bytes:
    """Every 16th of ``bars`` bars hits every pitch: running status keeps it under 1 MB."""
    events = [tempo_event(500000)]
    for step in range(bars * 16):
        events += [vlq(0 if i or step == 0 else 60) + bytes([0x99, p, 100]) for i, p in enumerate(pitches)]
        events += [vlq(60 if i == 0 else 0) + bytes([0x89, p, 0]) for i, p in enumerate(pitches)]
    return smf(*events)


def midi_inputs(gmd: Path | None, mutations: int, folder: Path) -> dict[str, tuple[bytes | None, bool]]:
    """name → (bytes, is a long-length input); bytes None means the path is made specially."""
    melodic = bytes([0, 0x90, 60, 100, 60, 0x80, 60, 0])
    files = {
        "empty": (b"", False),
        "text": (b"hello, I am not MIDI\n", False),
        "zip": (b"PK\x03\x04" + bytes(40), False),
        "truncated_header": (b"MThd\x00\x00\x00\x06\x00", False),
        "zero_resolution": (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x00", False),
        "smpte": (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\xe7\x28", False),
        "header_only": (b"MThd\x00\x00\x00\x06\x00\x00\x00\x00\x01\xe0", False),
        "tempo_zero": (smf(tempo_event(0), *PULSE), False),
        "tempo_zero_later": (smf(tempo_event(500000), *PULSE[:4], tempo_event(0), *PULSE[4:]), False),
        "tempo_1us": (smf(tempo_event(1), *PULSE), False),
        "tempo_max": (smf(tempo_event(2**24 - 1), *PULSE), False),
        "tempo_change": (smf(tempo_event(500000), *PULSE[:8], tempo_event(400000), *PULSE[8:]), False),
        "no_notes": (smf(tempo_event(500000)), False),
        "no_drum_channel": (smf(tempo_event(500000), *[melodic] * 8), False),
        "three_four": (smf(b"\x00\xff\x58\x04\x03\x02\x18\x08", *PULSE), False),
        "time_signature_0_0": (smf(b"\x00\xff\x58\x04\x00\x08\x18\x08", *PULSE), False),
        "truncated_track": (smf(tempo_event(500000), *PULSE)[:60], False),
        "huge_chunk_length": (smf(*PULSE)[:18] + b"\xff\xff\xff\xff" + smf(*PULSE)[22:], False),
        "garbage_after_header": (smf()[:22] + random.Random(0).randbytes(200), False),
        "overlapping_notes": (smf(*[vlq(10) + b"\x99\x24\x64" for _ in range(300)], b"\x00\x89\x24\x00"), False),
        "notes_20000_bars_apart": (smf(tempo_event(500000), drum_note(0), drum_note(20_000 * BAR)), True),
        "notes_100000_bars_apart": (smf(tempo_event(500000), drum_note(0), drum_note(100_000 * BAR)), True),
        "far_control_change": (smf(tempo_event(500000), *PULSE, vlq(50_000 * BAR) + b"\xb9\x07\x64"), True),
        "2000_bars": (smf(tempo_event(500000), *[drum_note(0 if b == 0 else BAR - 60) for b in range(2000)]), True),
        "1024_bars_at_10_qpm": (smf(tempo_event(6_000_000), *[drum_note(0 if b == 0 else BAR - 60) for b in range(1024)]), True),
        "1024_bars_dense_0.9MB": (dense(1024), True),
        "folder": (None, False),
        "missing": (None, False),
    }
    if gmd is not None:
        takes = sorted(gmd.rglob("*.mid"), key=lambda p: (p.stat().st_size, p.as_posix()))
        files["gmd_longest_take"] = (takes[-1].read_bytes(), True)
        rng = random.Random(0)
        for i in range(mutations):
            files[f"gmd_mutation_{i:02d}"] = (mutate(takes[rng.randrange(len(takes))].read_bytes(), rng), False)
    return files


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage to a MIDI file's body (the 22-byte file and track headers are kept)."""
    buf = bytearray(data)
    at = rng.randrange(22, len(buf))
    kind = rng.choice(["flip", "cut", "insert", "delta", "tempo", "length"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(22, len(buf))] ^= 1 << rng.randrange(8)
    elif kind == "cut":
        del buf[at:]
    elif kind == "insert":
        buf[at:at] = rng.randbytes(rng.randint(1, 32))
    elif kind == "delta":
        buf[at:at] = vlq(rng.randrange(2**28))
    elif kind == "tempo":
        pos = bytes(buf).find(b"\xff\x51\x03")
        if pos >= 0:
            buf[pos + 3 : pos + 6] = rng.choice([0, 1, rng.randrange(2**24)]).to_bytes(3, "big")
    else:
        buf[18:22] = rng.randrange(2**32).to_bytes(4, "big")
    return bytes(buf)


# ------------------------------------------------------------------------------------------------
# Cases


def build_cases(work: Path, gmd: Path | None, mutations: int) -> list[Case]:
    inputs = work / "inputs"
    inputs.mkdir()
    cases: list[Case] = []
    for name, (data, long) in midi_inputs(gmd, mutations, inputs).items():
        path = inputs / f"{name}.mid"
        if name == "folder":
            path.mkdir()
        elif data is not None:
            path.write_bytes(data)
        out = f"{{out}}/{name}"
        cases += [
            Case(f"inspect/{name}", ["inspect", str(path)], long),
            Case(f"render/{name}", ["render", str(path), "--wav", f"{out}/x.wav", "--png", f"{out}/x.png"], long),
            Case(f"reconstruct/{name}", ["reconstruct", str(path), "--out", out, "--wav"], long),
        ]
        if long:  # the model alone, on the 2-bar humanizer (twice the windows of a 4-bar model)
            cases.append(Case(f"humanize/{name}", ["humanize", str(path), "--out", out], long))
    good = inputs / "good.mid"
    good.write_bytes(smf(tempo_event(500000), *PULSE))
    a_file = str(good)
    bad_args = {
        "sample_t_nan": ["sample", "-t", "nan"], "sample_t_inf": ["sample", "-t", "inf"],
        "sample_t_1e9": ["sample", "-t", "1e9"], "sample_t_negative": ["sample", "-t", "-1"],
        "sample_t_text": ["sample", "-t", "hot"], "sample_bpm_negative": ["sample", "--bpm", "-50"],
        "sample_bpm_nan": ["sample", "--bpm", "nan"], "sample_bpm_huge": ["sample", "--bpm", "1e6"],
        "sample_n_0": ["sample", "-n", "0"], "sample_n_100000": ["sample", "-n", "100000"],
        "sample_seed_2e70": ["sample", "--seed", str(2**70)], "sample_seed_negative": ["sample", "--seed", "-1"],
        "sample_feedback_bogus": ["sample", "--feedback", "bogus", "-n", "1"],
        "sample_checkpoint_missing": ["sample", "--checkpoint", "/nonexistent/run"],
        "sample_out_is_a_file": ["sample", "-n", "1", "--out", a_file],
        "sample_out_under_a_file": ["sample", "-n", "1", "--out", f"{a_file}/sub"],
        "reconstruct_bpm_negative": ["reconstruct", a_file, "--bpm", "-50"],
        "reconstruct_bpm_nan": ["reconstruct", a_file, "--bpm", "nan"],
        "humanize_bpm_nan": ["humanize", a_file, "--bpm", "nan"],
        "humanize_t_nan": ["humanize", a_file, "-t", "nan"],
        "reconstruct_out_is_a_file": ["reconstruct", a_file, "--out", a_file],
        "inspect_bars_0": ["inspect", a_file, "--bars", "0"], "inspect_bars_negative": ["inspect", a_file, "--bars", "-1"],
        "inspect_bars_huge": ["inspect", a_file, "--bars", str(10**9)],
        "inspect_pitch_map_bogus": ["inspect", a_file, "--pitch-map", "bogus"],
        "render_nothing_to_do": ["render", a_file], "render_wav_is_a_folder": ["render", a_file, "--wav", str(inputs)],
        "render_png_is_a_folder": ["render", a_file, "--png", str(inputs)],
        "render_wav_under_a_file": ["render", a_file, "--wav", f"{a_file}/x.wav"],
        "render_same_file_twice": ["render", a_file, "--wav", "{out}/x", "--png", "{out}/x"],
        "interpolate_steps_1": ["interpolate", a_file, a_file, "--steps", "1"],
        "interpolate_steps_100000": ["interpolate", a_file, a_file, "--steps", "100000"],
        "train_device_bogus": ["train", "--run-dir", "{out}/run", "--device", "bogus"],
        "train_device_cuda7": ["train", "--run-dir", "{out}/run", "--device", "cuda:7"],
        "train_run_dir_is_a_file": ["train", "--run-dir", a_file, "--data", str(inputs)],
        "evaluate_samples_1": ["evaluate", "--samples", "1"], "evaluate_seed_negative": ["evaluate", "--seed", "-1"],
        "preprocess_out_txt": ["preprocess", "--out", "{out}/x.txt", "--data", str(inputs)],
        "preprocess_split_bogus": ["preprocess", "--out", "{out}/x.npz", "--split", "bogus"],
        "data_stats_missing": ["data", "stats", "--data", "/nonexistent/gmd"],
        "import_magenta_missing": ["import-magenta", "/nonexistent/model.ckpt", "--config", "groovae_4bar", "--out", "{out}/m"],
        "config_unknown": ["data", "stats", "--config", "nope", "--data", str(inputs)],
    }  # fmt: skip
    for name, args in bad_args.items():
        args = [a.replace("{out}", f"{{out}}/{name}") for a in args]
        if args[0] in ("sample", "reconstruct", "humanize", "interpolate") and "--out" not in args:
            args += ["--out", f"{{out}}/{name}"]
        cases.append(Case(f"args/{name}", args))
    return cases


# ------------------------------------------------------------------------------------------------
# Running


def run_case(case: Case, work: Path, timeout: float) -> Result:
    out = work / "out"
    args = [a.replace("{out}", str(out)) for a in case.args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "MPLBACKEND": "Agg"}
    killed = threading.Event()
    with tempfile.TemporaryFile() as stdout_file, tempfile.TemporaryFile() as stderr_file:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "musicvae", *args], stdout=stdout_file, stderr=stderr_file,
                                env=env, cwd=work)  # fmt: skip
        timer = threading.Timer(timeout, lambda: (killed.set(), proc.kill()))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
        timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout_file.seek(0)
        stderr_file.seek(0)
        stdout, err = stdout_file.read().decode(errors="replace"), stderr_file.read().decode(errors="replace")
    text = stdout + err
    if killed.is_set():
        outcome = "timeout"
    elif "Traceback" in text:
        outcome = "traceback"
    elif proc.returncode == 0:
        outcome = "ok"
    elif proc.returncode == 1:
        lines = err.strip().splitlines() or [line for line in stdout.splitlines() if line.startswith("error:")]
        outcome = "clean" if len(lines) == 1 and lines[0].startswith("error:") else "traceback"
    elif proc.returncode == 2 and "Usage:" in text:
        outcome = "usage"
    else:
        outcome = "traceback"
    if outcome not in ("ok", "timeout") and _outputs_of(case, out):
        outcome, err = "left_files", f"left {_outputs_of(case, out)}"
    message = (err.strip().splitlines() or stdout.strip().splitlines() or [""])[-1][:160]
    cpu = usage.ru_utime + usage.ru_stime
    return Result(case, outcome, seconds, cpu, usage.ru_maxrss / 1024, message)  # ru_maxrss is in KB on Linux


def _outputs_of(case: Case, out: Path) -> list[str]:
    name = case.name.split("/", 1)[1]
    folder = out / name
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gmd", type=Path, default=os.environ.get("MUSICVAE_GMD_DIR"), help="GMD folder (for real takes)")
    parser.add_argument("--mutations", type=int, default=20, help="mutated GMD takes to try")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a case is killed")
    opts = parser.parse_args()
    gmd = opts.gmd if opts.gmd and Path(opts.gmd).is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="musicvae-robustness-"))
    try:
        cases = build_cases(work, Path(gmd) if gmd else None, opts.mutations)
        started = time.perf_counter()
        with ThreadPoolExecutor(opts.jobs) as pool:
            results = list(pool.map(lambda c: run_case(c, work, opts.timeout), cases))
        total = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for r in results:
        print(f"case.{r.case.name}={r.outcome} ({r.seconds:.1f} s, cpu {r.cpu_seconds:.1f} s, {r.max_rss_mb:.0f} MB) {r.message}")
    counts = {k: sum(r.outcome == k for r in results) for k in ("ok", "clean", "usage", "traceback", "timeout", "left_files")}
    for kind in ("inspect", "render", "reconstruct", "humanize", "args"):
        group = [r for r in results if r.case.name.startswith(kind + "/")]
        bad = [r for r in group if r.outcome not in ("ok", "clean", "usage")]
        print(f"{kind}_cases={len(group)}  {kind}_handled_cleanly={len(group) - len(bad)}")
    for key, value in counts.items():
        print(f"outcome_{key}={value}")
    long = [r for r in results if r.case.long]
    if long:
        worst_rss = max(long, key=lambda r: r.max_rss_mb)
        worst_time = max(long, key=lambda r: r.seconds)
        worst_cpu = max(long, key=lambda r: r.cpu_seconds)
        print(f"long_inputs_peak_rss_mb={worst_rss.max_rss_mb:.0f} ({worst_rss.case.name})")
        print(f"long_inputs_max_wall_seconds={worst_time.seconds:.1f} ({worst_time.case.name})")
        print(f"long_inputs_max_cpu_seconds={worst_cpu.cpu_seconds:.1f} ({worst_cpu.case.name})")
    print(f"all_cases_peak_rss_mb={max(r.max_rss_mb for r in results):.0f}")
    print(f"wall_seconds={total:.0f} (jobs={opts.jobs}, load average {os.getloadavg()[0]:.1f})")
    handled = counts["ok"] + counts["clean"] + counts["usage"]
    print(f"handled_cleanly={handled}/{len(results)} (tracebacks {counts['traceback']}, timeouts {counts['timeout']}, "
          f"half-written {counts['left_files']})")  # fmt: skip


if __name__ == "__main__":
    main()
