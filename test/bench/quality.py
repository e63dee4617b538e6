"""Model quality side by side (`make bench`, issue 16): the reference CNN in
iceml (parity.c) and in PyTorch (torch_parity.py) on the same synthetic
chips and split, 15 epochs, and iceml's recipe on the same chips.

    python3 quality.py PARITY_BIN CHIPS.f32

Seeds from ICEML_BENCH_QUALITY_SEEDS (default "42 43 44"): each figure is
the mean over the seeds (one test split of 321 chips moves by a few hundredths
from one seed to the next, more than the parity goal of 0.02).  Prints every
program's per-epoch "curve" lines and the BENCH lines: *_best (the best
epoch's test log loss), *_final (the last epoch's), *_last5_std (standard
deviation of the last 5 epochs' test log loss), *_train_s (seconds)."""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    fig = {}
    for line in out.splitlines():
        if line.startswith("curve "):
            print(line, flush=True)
        m = re.match(r"BENCH \S+_(best|final|last5_std|train_s) (\S+)", line)
        if m:
            fig[m.group(1)] = float(m.group(2))
    return fig


def have_torch():
    return subprocess.run([sys.executable, "-c", "import torch"],
                          capture_output=True).returncode == 0


def report(name, runs):
    for key, unit in (("best", "log_loss"), ("final", "log_loss"),
                      ("last5_std", "log_loss"), ("train_s", "s")):
        vals = [r[key] for r in runs]
        print(f"BENCH {name}_{key} {sum(vals) / len(vals):.4f} {unit} "
              f"(seeds: {' '.join(f'{v:.4f}' for v in vals)})", flush=True)
    return {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}


def main():
    parity, chips = sys.argv[1], sys.argv[2]
    seeds = os.environ.get("ICEML_BENCH_QUALITY_SEEDS", "42 43 44").split()
    # fewer epochs only to try the script out; the figures are for 15
    epochs = ["--epochs", os.environ.get("ICEML_BENCH_QUALITY_EPOCHS", "15")]
    torch_ok = have_torch()
    if not torch_ok:
        print("quality.py: PyTorch figures skipped: python3-torch is not installed "
              "(apt-get install python3-torch)", file=sys.stderr)
    ice, tor, rec = [], [], []
    for s in seeds:
        ice.append(run([parity, "train", chips, "--seed", s, "--name", f"parity_logloss_iceml_seed{s}"] + epochs))
        if torch_ok:
            tor.append(run([sys.executable, os.path.join(HERE, "torch_parity.py"), chips,
                            "--seed", s, "--name", f"parity_logloss_torch_seed{s}"] + epochs))
        rec.append(run([parity, "train", chips, "--seed", s, "--recipe",
                        "--name", f"recipe_logloss_iceml_seed{s}"] + epochs))
    i = report("parity_logloss_iceml", ice)
    r = report("recipe_logloss_iceml", rec)
    if tor:
        t = report("parity_logloss_torch", tor)
        print(f"BENCH parity_gap_best {i['best'] - t['best']:+.4f} log_loss (iceml - torch)")
        print(f"BENCH parity_gap_final {i['final'] - t['final']:+.4f} log_loss (iceml - torch)")
        print(f"BENCH recipe_vs_torch_ratio {r['final'] / t['best']:.3f} x "
              "(recipe's final epoch / PyTorch reference's best epoch)")


if __name__ == "__main__":
    main()
