"""Model quality side by side (`make bench`, issue 16): the reference CNN in
iceml (parity.c) and in PyTorch (torch_parity.py) on the same synthetic
chips and split, 15 epochs, and iceml's recipe (README, "the recipe") on the
same chips.

    python3 quality.py PARITY_BIN CHIPS.f32

Seeds from ICEML_BENCH_QUALITY_SEEDS (default "42 43 44").  The programs run
one after another (each takes both cores), seed by seed.  One test split of
321 chips moves by a few hundredths from one seed to the next, more than the
parity goal of 0.02: judge the means.  Prints every program's per-epoch
"curve NAME EPOCH train_loss test_loss test_acc seconds" lines, then per seed
and as the mean over the seeds:

  parity_logloss_iceml_best / _final   the reference CNN in iceml: the best
  parity_logloss_torch_best / _final   epoch's and the last epoch's test log
                                       loss, and in PyTorch
  parity_std_last5_iceml / _torch      standard deviation of the last 5
                                       epochs' test log loss
  recipe_logloss_iceml                 the recipe's deployment after its last
                                       epoch (what a user gets: no epoch is
                                       picked on the test chips)
  recipe_ratio_to_torch                recipe_logloss_iceml / PyTorch's best
                                       epoch (the goal: <= 0.8); and
                                       recipe_ratio_to_torch_final, over its
                                       final epoch
  *_train_s                            training time of each program
"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# the recipe as the README gives it: parity.c --recipe is recipe_cnn with its
# default hyperparameters, deployed as the README says
RECIPE = ["--recipe"]


def run(cmd):
    t0 = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    fig = {}
    for line in out.splitlines():
        if line.startswith("curve "):
            print(line, flush=True)
        m = re.match(r"BENCH \S+_(best|final|last5_std|train_s) (\S+)\D*(\d*)", line)
        if m:
            fig[m.group(1)] = float(m.group(2))
            if m.group(1) == "best":
                fig["best_note"] = f"(epoch {m.group(3)})"
    fig["wall_s"] = time.time() - t0
    return fig


def have_torch():
    return subprocess.run([sys.executable, "-c", "import torch"],
                          capture_output=True).returncode == 0


def line(name, val, unit, note=""):
    v = f"{val:.1f}" if unit == "s" else f"{val:.4f}"
    print(f"BENCH {name} {v} {unit}{' ' + note if note else ''}", flush=True)


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
        ice.append(run([parity, "train", chips, "--seed", s, "--name", f"iceml_seed{s}"] + epochs))
        if torch_ok:
            tor.append(run([sys.executable, os.path.join(HERE, "torch_parity.py"), chips,
                            "--seed", s, "--name", f"torch_seed{s}"] + epochs))
        rec.append(run([parity, "train", chips, "--seed", s] + RECIPE +
                       ["--name", f"recipe_seed{s}"] + epochs))
        sfx = f"_seed{s}"
        line("parity_logloss_iceml_best" + sfx, ice[-1]["best"], "log_loss", ice[-1]["best_note"])
        line("parity_logloss_iceml_final" + sfx, ice[-1]["final"], "log_loss")
        line("parity_std_last5_iceml" + sfx, ice[-1]["last5_std"], "log_loss")
        line("parity_train_s_iceml" + sfx, ice[-1]["train_s"], "s")
        if torch_ok:
            line("parity_logloss_torch_best" + sfx, tor[-1]["best"], "log_loss", tor[-1]["best_note"])
            line("parity_logloss_torch_final" + sfx, tor[-1]["final"], "log_loss")
            line("parity_std_last5_torch" + sfx, tor[-1]["last5_std"], "log_loss")
            line("parity_train_s_torch" + sfx, tor[-1]["train_s"], "s")
        line("recipe_logloss_iceml" + sfx, rec[-1]["final"], "log_loss")
        line("recipe_train_s_iceml" + sfx, rec[-1]["train_s"], "s")
        if torch_ok:
            line("recipe_ratio_to_torch" + sfx, rec[-1]["final"] / tor[-1]["best"], "x")

    def mean(runs, key):
        vals = [r[key] for r in runs]
        return sum(vals) / len(vals), "(seeds " + " ".join(seeds) + ": " + \
            " ".join(f"{v:.1f}" if key == "train_s" else f"{v:.4f}" for v in vals) + ")"

    print(f"quality: the means over {len(seeds)} seeds", flush=True)
    for name, runs, key, unit in (
            ("parity_logloss_iceml_best", ice, "best", "log_loss"),
            ("parity_logloss_iceml_final", ice, "final", "log_loss"),
            ("parity_logloss_torch_best", tor, "best", "log_loss"),
            ("parity_logloss_torch_final", tor, "final", "log_loss"),
            ("parity_std_last5_iceml", ice, "last5_std", "log_loss"),
            ("parity_std_last5_torch", tor, "last5_std", "log_loss"),
            ("recipe_logloss_iceml", rec, "final", "log_loss"),
            ("parity_train_s_iceml", ice, "train_s", "s"),
            ("parity_train_s_torch", tor, "train_s", "s"),
            ("recipe_train_s_iceml", rec, "train_s", "s")):
        if runs:
            line(name, *mean(runs, key)[:1], unit, mean(runs, key)[1])
    if tor:
        i_b, i_f = mean(ice, "best")[0], mean(ice, "final")[0]
        t_b, t_f = mean(tor, "best")[0], mean(tor, "final")[0]
        r = mean(rec, "final")[0]
        line("parity_gap_best", i_b - t_b, "log_loss", "(iceml - torch; goal within 0.02)")
        line("parity_gap_final", i_f - t_f, "log_loss", "(iceml - torch; goal within 0.02)")
        line("recipe_ratio_to_torch", r / t_b, "x",
             "(recipe_logloss_iceml / parity_logloss_torch_best, means; goal <= 0.8)")
        line("recipe_ratio_to_torch_final", r / t_f, "x",
             "(recipe_logloss_iceml / parity_logloss_torch_final, means)")


if __name__ == "__main__":
    main()
