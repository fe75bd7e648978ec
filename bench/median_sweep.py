#!/usr/bin/python3
"""Runs one nccl-tests-style Loom benchmark several times and prints, per size, the median time
and bus bandwidth (out-of-place and in-place) over the runs, plus the total of wrong values.

  bench/median_sweep.py --runs 3 -- build/bin/loomrun -n 2 -- build/bin/all_reduce_perf -b 4K -e 256M -f 4 -a max

Medians, because this 2-core machine is shared and noisy (see ../shared/BENCH.md)."""
import argparse
import statistics
import subprocess
import sys


def parse_rows(text):
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if not f or f[0].startswith("#") or not f[0].isdigit() or len(f) < 13:
            continue
        rows[int(f[0])] = {"type": f[2], "t_out": float(f[5]), "bw_out": float(f[7]), "wrong_out": f[8],
                           "t_in": float(f[9]), "bw_in": float(f[11]), "wrong_in": f[12]}
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command and args.command[0] == "--" else args.command
    if not cmd:
        ap.error("give the benchmark command after --")
    runs = []
    for _ in range(args.runs):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            sys.stderr.write(p.stdout + p.stderr)
            sys.exit(f"median_sweep: {' '.join(cmd)} exited with {p.returncode}")
        runs.append(parse_rows(p.stdout))
    print(f"# {' '.join(cmd)}")
    print(f"# medians over {args.runs} runs; time in us, busbw in GB/s")
    print(f"# {'size':>10} {'time_out':>10} {'busbw_out':>9} {'time_in':>10} {'busbw_in':>9} wrong")
    for size in sorted(runs[0]):
        vals = [r[size] for r in runs if size in r]
        med = lambda k: statistics.median(v[k] for v in vals)
        wrong = sum(int(v["wrong_out"]) + int(v["wrong_in"]) for v in vals
                    if v["wrong_out"].isdigit() and v["wrong_in"].isdigit())
        print(f"  {size:>10} {med('t_out'):>10.1f} {med('bw_out'):>9.2f} {med('t_in'):>10.1f} {med('bw_in'):>9.2f} {wrong}")


if __name__ == "__main__":
    main()
