"""Seconds per full GrooVAE training step (forward, loss, backward, clip, Adam) on random data.

    python bench/train_step.py [--config groovae_4bar] [--batch-size 512] [--steps 5]
                               [--precision fp32|bf16|both] [--threads N] [--profile]
                               [--system-malloc]

Data: random 0/1 hits (p = 0.2) with random velocities / offsets at the hits, so the model does
exactly the work of a real batch. Each precision gets a fresh model and optimizer (same seed),
``--warmup`` untimed steps (2: the allocator settles after two), then ``--steps`` timed ones;
the median is reported. bf16 is CPU autocast (``torch.autocast("cpu", dtype=torch.bfloat16)``)
over the forward pass with float32 master weights, loss and optimizer; fp32 is the default
precision. ``configure_cpu_allocator`` is applied unless ``--system-malloc`` is given.

magenta (TF 2.12, fp32) was reported at 2.1–2.2 s/step at batch 512 and 0.41–0.48 s/step at
batch 64 on the project's 2-core CPU. Prints ``name=value`` lines; the headline,
``examples_per_second`` for fp32, comes last. ``*_other_cpu_seconds`` is CPU time used by other
processes during a timed step (median): if it is not ~0 the figures are contended.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
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
    args = parser.parse_args()
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
    headline = "fp32" if "fp32" in results else precisions[0]
    print(f"examples_per_second={args.batch_size / results[headline][0]:.1f}")


if __name__ == "__main__":
    main()
