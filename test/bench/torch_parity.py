"""The reference CNN in PyTorch, trained as test/bench/parity.c trains it in
iceml, on the same chips and split, for the parity benchmark:

    python3 torch_parity.py CHIPS.f32 [--epochs 15] [--seed 42] [--name N]
                            [--init torch_default|he_normal] [--threads 2]
                            [--lockstep FILE] [--no-dropout] [--batch-log]

CHIPS.f32 is written by `parity write`: 1604 chips of 3 x 75 x 75 floats,
1604 labels, 1604 incidence angles; the first 1283 train, the last 321 test.
Per-channel standardisation from the training split (population standard
deviation, as iceml), batch 32, Adam (lr 1e-3), BCE on the logit, a fresh
shuffle per epoch with the last partial batch kept, evaluation in eval mode.
Prints the same lines as parity.c: "curve NAME EPOCH train_loss test_loss
test_acc seconds" per epoch, then BENCH NAME_best / _final / _last5_std /
_train_s.

--lockstep FILE (written by `parity train ... --dump FILE`) starts from
iceml's initial weights and takes iceml's batch order in every epoch; with
--no-dropout on both sides the two programs then compute the same training
up to floating-point rounding, which shows whether anything but the random
draws (weights, order, dropout masks) differs."""
import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from torch_cnn import reference_cnn

N_TRAIN, N_TEST, C, S = 1283, 321, 3, 75
N = N_TRAIN + N_TEST


def log_loss(p, y):
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def he_normal_(model):
    """iceml's initialisation before 0.1.1: He normal before a ReLU, Glorot
    uniform for the last layer, zero biases."""
    layers = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    for i, m in enumerate(layers):
        if i + 1 < len(layers):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        else:
            nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("chips")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--name", default="parity_logloss_torch")
    ap.add_argument("--init", default="torch_default", choices=["torch_default", "he_normal"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lockstep")
    ap.add_argument("--no-dropout", action="store_true")
    ap.add_argument("--batch-log", action="store_true")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    raw = np.fromfile(a.chips, dtype=np.float32)
    x = torch.from_numpy(raw[: N * C * S * S].reshape(N, C, S, S).copy())
    y = torch.from_numpy(raw[N * C * S * S: N * C * S * S + N].copy()).reshape(N, 1)
    xt, yt = x[:N_TRAIN], y[:N_TRAIN]
    mean = xt.mean(dim=(0, 2, 3), keepdim=True)
    std = xt.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
    x = (x - mean) / std
    xt, xv, yv = x[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:].numpy().ravel()

    model = reference_cnn()
    if a.init == "he_normal":
        he_normal_(model)
    orders = None
    if a.no_dropout:
        for m in model:
            if isinstance(m, nn.Dropout):
                m.p = 0.0
    if a.lockstep:
        blob = np.fromfile(a.lockstep, dtype=np.float32)
        at = 0
        with torch.no_grad():
            for m in model:
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    for p in (m.weight, m.bias):
                        p.copy_(torch.from_numpy(blob[at:at + p.numel()].reshape(p.shape)))
                        at += p.numel()
        orders = torch.from_numpy(blob[at:].view(np.int32).astype(np.int64)).reshape(-1, N_TRAIN)
        assert orders.shape[0] >= a.epochs
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    curve = []
    t_all = time.perf_counter()
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = orders[epoch - 1] if orders is not None else torch.randperm(N_TRAIN)
        total = 0.0
        for at in range(0, N_TRAIN, 32):
            idx = perm[at:at + 32]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            if a.batch_log:
                print(f"batch {epoch} {at + len(idx)} {loss.item():.7f}", flush=True)
        model.eval()
        with torch.no_grad():
            p = torch.sigmoid(torch.cat([model(xv[i:i + 64]) for i in range(0, N_TEST, 64)])).numpy().ravel()
        ll = log_loss(p, yv)
        acc = float(np.mean((p >= 0.5) == (yv > 0.5)))
        curve.append(ll)
        print(f"curve {a.name} {epoch} {total / N_TRAIN:.4f} {ll:.4f} {acc:.3f} "
              f"{time.perf_counter() - t0:.2f}", flush=True)
    best = min(curve)
    last = curve[-5:]
    mean5 = sum(last) / len(last)
    std5 = math.sqrt(max(0.0, sum(v * v for v in last) / len(last) - mean5 * mean5))
    print(f"BENCH {a.name}_best {best:.4f} log_loss (epoch {curve.index(best) + 1})")
    print(f"BENCH {a.name}_final {curve[-1]:.4f} log_loss")
    print(f"BENCH {a.name}_last5_std {std5:.4f} log_loss")
    print(f"BENCH {a.name}_train_s {time.perf_counter() - t_all:.1f} s")


if __name__ == "__main__":
    main()
