"""A torch workload beside a competing process: how thread count and OpenMP waiting set its speed.

Run from the project root::

    .venv/bin/python benchmarks/bench_load.py [--steps 30] [--repeat 3] [--hogs N]

What it does
------------
1. Starts ``--hogs`` competing processes (default: one per core, minus one)
   that spin on the CPU, as other users' jobs do on a shared machine.
2. In a fresh process per configuration (OpenMP reads its settings at start),
   times ``--steps`` training-like steps of a small convolutional network on
   ``(16, 1, 128, 128)`` batches: forward, backward and an SGD update, after
   two untimed warm-up steps. Each step is a burst of parallel regions with
   short serial gaps, which is where waiting OpenMP threads spin.
3. Configurations: the threads the runner gave before (every core, OpenMP's
   default waiting, ``OMP_WAIT_POLICY`` unset) and what it gives now
   (:func:`foamlib.study.kernel_environment` with
   :func:`foamlib.device.idle_cpus` threads, measured before the hogs start,
   as the runner does before it starts any kernel), each also with the other
   setting changed, so that the share of each can be read off.

The configurations take turns, ``--repeat`` rounds, so that a change in the
machine's other load spreads over all of them. It prints one line per
configuration: threads, wait policy, the median over all rounds of the
seconds per step, and the slowest round's median. On an idle machine run it with ``--hogs 0`` to see the cost of the
passive policy where nothing competes.

Measured
--------
2026-12-02 on the development machine (2 cores, shared: a load average of
about 4.6 from other users' tests besides the one hog), ``--steps 10
--repeat 3``: every core with default waiting 861 ms/step (median); every core
with passive waiting 451 ms; the one idle core 377 ms (default waiting) and
380 ms (passive, what the runner now gives). So under load the kernels' steps
run about 2.3 times faster; most of it comes from either change alone, and
spinning threads cost the most where threads outnumber the free cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

_CHILD = r"""
import json, sys, time
import torch
steps = int(sys.argv[1])
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
    torch.nn.Conv2d(16, 1, 3, padding=1))
opt = torch.optim.SGD(net.parameters(), lr=0.01)
x = torch.rand(16, 1, 128, 128)
times = []
for i in range(steps + 2):
    start = time.perf_counter()
    opt.zero_grad()
    loss = net(x).square().mean()
    loss.backward()
    opt.step()
    if i >= 2:
        times.append(time.perf_counter() - start)
print(json.dumps({"threads": torch.get_num_threads(), "times": times}))
"""

_HOG = "while True: pass"


def _measure(threads: int, policy: str | None, steps: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = str(threads)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", _CHILD, str(steps)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from foamlib.device import cpu_threads, idle_cpus
    from foamlib.study import kernel_environment

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration (default 30)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over the configurations (default 3)")
    parser.add_argument("--hogs", type=int, default=None, help="competing busy processes (default: cores - 1)")
    args = parser.parse_args(argv)
    cores = cpu_threads()
    idle = idle_cpus()  # before the hogs start, as the runner measures before it starts kernels
    hogs = max(1, cores - 1) if args.hogs is None else args.hogs
    passive = kernel_environment(idle)["OMP_WAIT_POLICY"]
    print(f"{cores} cores, {idle} idle before the hogs; {hogs} competing busy process(es); {args.steps} steps each")
    procs = [subprocess.Popen([sys.executable, "-c", _HOG]) for _ in range(hogs)]
    try:
        time.sleep(1.0)
        configs = (
            ("before: every core, default waiting", cores, None),
            ("every core, passive waiting", cores, passive),
            ("idle cores, default waiting", idle, None),
            ("now: idle cores, passive waiting", idle, passive),
        )
        times: dict[str, list[float]] = {label: [] for label, _, _ in configs}
        rounds: dict[str, list[float]] = {label: [] for label, _, _ in configs}
        for _ in range(args.repeat):
            for label, threads, policy in configs:
                result = _measure(threads, policy, args.steps)
                times[label] += result["times"]
                rounds[label].append(statistics.median(result["times"]))
        for label, threads, policy in configs:
            print(f"{label:40s} threads {threads:3d}  wait {policy or 'default':8s}  "
                  f"{statistics.median(times[label]) * 1000:8.1f} ms/step (median), "
                  f"slowest round {max(rounds[label]) * 1000:8.1f} ms")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
