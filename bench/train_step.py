"""Seconds per full GrooVAE training step (forward, loss, backward, clip, Adam) on random data.

    python bench/train_step.py [--config groovae_4bar] [--batch-size 512] [--steps 5]
                               [--precision fp32|bf16|both] [--threads N] [--profile]
                               [--system-malloc] [--reference]

Data: random 0/1 hits (p = 0.2) with random velocities / offsets at the hits, so the model does
exactly the work of a real batch. Each precision gets a fresh model and optimizer (same seed),
``--warmup`` untimed steps (2: the allocator settles after two), then ``--steps`` timed ones;
the median is reported. bf16 is CPU autocast (``torch.autocast("cpu", dtype=torch.bfloat16)``)
over the forward pass with float32 master weights, loss and optimizer; fp32 is the default
precision. ``configure_cpu_allocator`` is applied unless ``--system-malloc`` is given.

magenta (TF 2.12, fp32) was reported at 2.1–2.2 s/step at batch 512 and 0.41–0.48 s/step at
batch 64 on the project's 2-core CPU, alongside "a naive PyTorch fp32 step is about 2.5 s and
bf16 about 1.45 s at 512". ``--reference`` re-measures that yardstick on the machine at hand: a
plain PyTorch GrooVAE step at batch 512 (``nn.LSTM`` encoder and decoder, the same dropout,
Adam; none of this project's work), and the fp32 / bf16 matmul peak. The ratio of the naive
step here to the reported 2.5 s says how much slower or faster this machine is than the one
magenta was timed on, which gives ``magenta_estimated_seconds_per_step`` for this machine —
an estimate, printed next to the reported figure, not a measurement of magenta. It also prints
``{fp32,bf16}_floor_seconds_per_step``: the step's matmul work (``step_gflop``, counted from the
layer sizes) at that measured peak rate, a floor for any implementation of this model (magenta's
included) whose products run no faster than a large square matmul. To measure magenta itself,
run ``bench/magenta_train_step.py`` in a magenta 2.1.4 environment (its docstring says how to
make one): on the project's machine it gave 4.63 s at 512 and 0.93 s at
64, against estimates of 4.4 s and 0.90 s.

Prints ``name=value`` lines; the headline, ``examples_per_second`` for the trainer's default
precision (fp32; ``--precision bf16`` or ``auto`` must be asked for), comes last. ``*_other_cpu_seconds`` is CPU time used by other processes during a timed step
(median): if it is not ~0 the figures are contended.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from musicvae.configs import get_config
from musicvae.model import (
    MusicVAE,
    clip_gradients,
    configure_cpu_allocator,
    elbo,
    learning_rate,
    make_optimizer,
)
from musicvae.train import DEFAULT_PRECISION

# Reported on the machine magenta was timed on (issue #3): seconds per step, fp32.
MAGENTA_REPORTED = {512: (2.1, 2.2), 64: (0.41, 0.48)}
NAIVE_REPORTED_FP32_512 = 2.5  # "a naive PyTorch fp32 step is about 2.5 s" at batch 512


def _machine_busy_seconds() -> float:
    """CPU seconds spent (all processes) since boot, from /proc/stat; 0 where unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:8]]
    except OSError:
        return 0.0
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def random_batch(batch: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    hits = (torch.rand(batch, steps, 9, generator=generator) < 0.2).float()
    velocities = torch.rand(batch, steps, 9, generator=generator) * hits
    offsets = (torch.rand(batch, steps, 9, generator=generator) * 2 - 1) * hits
    return torch.cat([hits, velocities, offsets], dim=-1)


class NaiveGrooVAE(torch.nn.Module):
    """GrooVAE as a first PyTorch port would write it: bidirectional ``nn.LSTM`` encoder, a
    2-layer ``nn.LSTM`` decoder fed [previous | z], nn.Dropout on the layer inputs, squared-error
    reconstruction. The yardstick the issue's "naive PyTorch step" figures refer to."""

    def __init__(self, depth: int = 27, enc: int = 512, dec: int = 256, z: int = 256, keep: float = 0.3):
        super().__init__()
        self.drop = torch.nn.Dropout(1 - keep)
        self.encoder = torch.nn.LSTM(depth, enc, batch_first=True, bidirectional=True)
        self.mu, self.sigma = torch.nn.Linear(2 * enc, z), torch.nn.Linear(2 * enc, z)
        self.initial = torch.nn.Linear(z, 4 * dec)
        self.decoder = torch.nn.LSTM(depth + z, dec, num_layers=2, batch_first=True, dropout=1 - keep)
        self.out = torch.nn.Linear(dec, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        _, (h, _) = self.encoder(self.drop(x))
        last = torch.cat([h[0], h[1]], dim=-1)
        z = self.mu(last) + torch.nn.functional.softplus(self.sigma(last)) * torch.randn(batch, self.mu.out_features)
        c0, h0, c1, h1 = torch.tanh(self.initial(z)).chunk(4, dim=-1)
        previous = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)
        inputs = torch.cat([previous, z.unsqueeze(1).expand(batch, steps, z.shape[-1])], dim=-1)
        outputs, _ = self.decoder(self.drop(inputs), (torch.stack([h0, h1]), torch.stack([c0, c1])))
        return ((self.out(outputs).float() - x) ** 2).sum() / batch


def naive_seconds_per_step(batch_size: int, precision: str, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    model = NaiveGrooVAE().train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = random_batch(batch_size, 64, torch.Generator().manual_seed(0))
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """Sustained matmul throughput of this CPU, GFLOP/s (median of ``repeats`` n³ products)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def lstm_gflop(steps: int, inputs: int, sizes: tuple[int, ...], directions: int = 1) -> float:
    """Forward matmul GFLOP of one sequence through stacked LSTM layers: per step and direction
    a [in + H] x [4H] product (2 FLOP per multiply-add)."""
    flop = 0
    for size in sizes:
        flop += directions * steps * 2 * (inputs + size) * 4 * size
        inputs = directions * size
    return flop / 1e9


def step_gflop(config, batch_size: int) -> float:
    """Matmul GFLOP of one flat-decoder training step: forward × 3 (the backward pass computes
    the input and the weight gradients, each as costly as the forward product). Elementwise work
    is left out, so this is a lower bound, and the same for magenta: it runs the same products."""
    m, steps = config.model, config.max_seq_len
    encoder = lstm_gflop(steps, m.input_depth + config.control_depth, m.enc_rnn_size, directions=2)
    decoder = lstm_gflop(steps, m.output_depth + m.z_size + config.control_depth, m.dec_rnn_size)
    dense = (
        2 * 2 * 2 * m.enc_rnn_size[-1] * m.z_size  # mu and sigma from both directions' last h
        + 2 * m.z_size * 2 * sum(m.dec_rnn_size)  # z -> initial (c, h) of every decoder layer
        + steps * 2 * m.dec_rnn_size[-1] * m.output_depth  # output projection
    ) / 1e9
    return 3 * batch_size * (encoder + decoder + dense)


def bench(config, batch_size: int, precision: str, steps: int, warmup: int, profile: bool):
    torch.manual_seed(config.train.seed)
    model = MusicVAE(config).train()
    optimizer = make_optimizer(model, config.train)
    params = [p for p in model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(0)
    x = random_batch(batch_size, config.max_seq_len, generator)
    controls = x[..., :9].contiguous() if config.control_depth else None
    use_bf16 = precision == "bf16"

    def train_step(step: int) -> float:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config.train)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            terms = model(x, x, controls)
        loss = elbo(terms, step, config.loss)["loss"]  # float32 either way
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(params, config.train.grad_clip, config.train.grad_norm_clip_to_zero)
        optimizer.step()
        return float(loss.detach())

    for step in range(warmup):
        train_step(step)
    times, other = [], []
    for step in range(warmup, warmup + steps):
        busy0, own0, t0 = _machine_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        loss = train_step(step)
        times.append(time.perf_counter() - t0)
        other.append(max(0.0, (_machine_busy_seconds() - busy0) - (_own_cpu_seconds() - own0)))
    if not torch.isfinite(torch.tensor(loss)):
        sys.exit(f"{precision}: non-finite loss {loss}")
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            train_step(warmup + steps)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)
    return statistics.median(times), statistics.median(other), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="groovae_4bar")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="both")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table on stderr")
    parser.add_argument(
        "--system-malloc", action="store_true", help="skip configure_cpu_allocator (glibc defaults)"
    )
    parser.add_argument(
        "--reference", action="store_true", help="also time the naive PyTorch step and matmul peak (adds ~1 min)"
    )
    parser.add_argument("--naive-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_only:  # the child process of --reference
        if args.threads:
            torch.set_num_threads(args.threads)
        for precision in ("fp32", "bf16"):
            print(f"{precision}={naive_seconds_per_step(512, precision, args.steps, args.warmup):.4f}")
        return
    allocator = False if args.system_malloc else configure_cpu_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = get_config(args.config)

    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    results = {}
    for precision in precisions:
        results[precision] = bench(config, args.batch_size, precision, args.steps, args.warmup, args.profile)

    print(f"config={config.name}")
    print(f"batch_size={args.batch_size}")
    print(f"threads={torch.get_num_threads()}")
    print(f"mkldnn={torch.backends.mkldnn.is_available()}")
    print(f"retain_freed_memory={allocator}")
    for precision, (seconds, other, times) in results.items():
        print(f"{precision}_step_seconds_all={','.join(f'{t:.3f}' for t in times)}")
        print(f"{precision}_other_cpu_seconds={other:.3f}")
        print(f"{precision}_seconds_per_step={seconds:.3f}")
        print(f"{precision}_examples_per_second={args.batch_size / seconds:.1f}")
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak_rss_mb={peak_kb / 1024:.0f}")
    if config.model.decoder == "flat":
        print(f"step_gflop={step_gflop(config, args.batch_size):.1f}")
    headline = DEFAULT_PRECISION if DEFAULT_PRECISION in results else precisions[0]
    if args.reference:
        reference(results[headline][0], headline, config, args)
    print(f"default_precision={headline}")
    print(f"examples_per_second={args.batch_size / results[headline][0]:.1f}")


def reference(seconds: float, precision: str, config, args) -> None:
    """The machine-speed yardstick and the magenta comparison (see the module docstring)."""
    gflop = step_gflop(config, args.batch_size)
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        peak = matmul_gflops(dtype)
        print(f"matmul_{name}_gflops={peak:.0f}")
        # no implementation of this step, ours or magenta's, can beat its matmuls at peak rate
        print(f"{name}_floor_seconds_per_step={gflop / peak:.3f}")
    # In a fresh process with glibc's default allocator settings: a naive port has no tuning.
    command = [sys.executable, __file__, "--naive-only", "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()
    naive = {p: float(line.split("=")[1]) for p, line in zip(("fp32", "bf16"), lines)}
    for p, value in naive.items():
        print(f"naive_{p}_seconds_per_step_at_512={value:.3f}")
    slowdown = naive["fp32"] / NAIVE_REPORTED_FP32_512
    print(f"machine_slowdown_vs_magenta_timing={slowdown:.2f}")
    if args.batch_size in MAGENTA_REPORTED:
        low, high = MAGENTA_REPORTED[args.batch_size]
        reported = (low + high) / 2
        print(f"magenta_reported_seconds_per_step={reported:.3f}")
        print(f"magenta_estimated_seconds_per_step={reported * slowdown:.3f}")
        print(f"{precision}_speedup_vs_magenta_reported={reported / seconds:.2f}")
        print(f"{precision}_speedup_vs_magenta_estimated={reported * slowdown / seconds:.2f}")


if __name__ == "__main__":
    main()
