"""The same reference CNN in PyTorch on the same chips, for a side-by-side
figure: python3 torch_cnn.py CHIPS.f32 (written by engine_bench).
Prints BENCH torch_train_epoch_s (2 threads, batch 32, Adam) and
BENCH torch_predict_image_ms (1 thread, one image).  torch_parity.py
imports reference_cnn() from here."""
import sys
import time

import numpy as np
import torch
from torch import nn


def reference_cnn():
    """statoil_cnn (src/nn/spec.c) with PyTorch's default initialisation."""
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Dropout(0.2),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Dropout(0.2),
        nn.Conv2d(128, 128, 3), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Dropout(0.2),
        nn.Conv2d(128, 64, 3), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Dropout(0.2),
        nn.Flatten(), nn.Linear(256, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 1))
    assert sum(p.numel() for p in model.parameters()) == 560193
    return model


def main():
    N, C, S = 1283, 3, 75
    raw = np.fromfile(sys.argv[1], dtype=np.float32)
    x = torch.from_numpy(raw[: N * C * S * S].reshape(N, C, S, S).copy())
    y = torch.from_numpy(raw[N * C * S * S:].copy()).reshape(N, 1)
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True)

    model = reference_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()

    torch.set_num_threads(2)
    best = float("inf")
    for epoch in range(2):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(N)
        for at in range(0, N, 32):
            idx = perm[at:at + 32]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        best = min(best, time.perf_counter() - t0)
    print(f"BENCH torch_train_epoch_s {best:.2f} s")

    torch.set_num_threads(1)
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(200):
            t0 = time.perf_counter()
            model(x[i % N: i % N + 1])
            times.append(time.perf_counter() - t0)
    times.sort()
    print(f"BENCH torch_predict_image_ms {times[100] * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
