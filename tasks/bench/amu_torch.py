"""PyTorch (CPU) peer of `deno task bench amu`: the same AMU-Tuning work, written the way the
reference (clip/amu.py, train.py) does it -- nn.Linear head, autograd, torch.optim.AdamW,
CosineAnnealingLR stepped per iteration -- on random features of the given sizes.

usage: python3 amu_torch.py '{"train": N, "test": T, "classes": C, "clip_dim": Dc,
                              "aux_dim": Da, "batches": [8, 256], "steps": S, "epochs": 50}'
Prints one JSON object of timings in seconds (steps: 0 = whole epoch)."""
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F


def main():
    a = json.loads(sys.argv[1])
    N, T, C, Dc, Da = a["train"], a["test"], a["classes"], a["clip_dim"], a["aux_dim"]
    alpha, lam = 0.5, 0.35
    g = torch.Generator().manual_seed(0)
    train_clip = torch.rand(N, Dc, generator=g) - 0.5
    train_aux = torch.rand(N, Da, generator=g) - 0.5
    test_clip = torch.rand(T, Dc, generator=g) - 0.5
    test_aux = torch.rand(T, Da, generator=g) - 0.5
    clip_weights = F.normalize(torch.rand(Dc, C, generator=g) - 0.5, dim=0)
    train_labels = torch.arange(N) % C
    test_labels = torch.arange(T) % C
    # Same cores as the engine uses (torch defaults to physical cores, 1 on a 2-thread VM).
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__}

    t0 = time.perf_counter()
    train_clip = train_clip / train_clip.norm(dim=-1, keepdim=True)
    test_clip = test_clip / test_clip.norm(dim=-1, keepdim=True)
    train_f = train_aux / train_aux.norm(dim=-1, keepdim=True)
    test_f = test_aux / test_aux.norm(dim=-1, keepdim=True)
    train_logits = 100.0 * train_clip @ clip_weights
    test_logits = 100.0 * test_clip @ clip_weights
    factor = torch.tensor(1.0)  # uncertainty 'none'
    w0 = torch.zeros(C, Da)
    w0.index_add_(0, train_labels, train_f)
    w0 /= N / C
    out["setup_s"] = time.perf_counter() - t0

    def logit_normalize(z):
        return (z - z.mean(dim=-1, keepdim=True)) / z.std(dim=-1, keepdim=True)

    head = None
    for batch in a["batches"]:
        head = torch.nn.Linear(Da, C, bias=False)
        head.weight.data = w0.clone()
        opt = torch.optim.AdamW(head.parameters(), lr=1e-3, eps=1e-4, weight_decay=0.01)
        iters = math.ceil(N / batch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a["epochs"] * iters)
        perm = torch.randperm(N, generator=g)
        steps = iters if a["steps"] <= 0 else min(iters, a["steps"])
        losses = []
        t = time.perf_counter()
        for i in range(steps):
            idx = perm[i * batch:(i + 1) * batch]
            y = train_labels[idx]
            aux = logit_normalize(head(train_f[idx]))
            fused = train_logits[idx] + factor * aux * alpha
            loss = lam * F.cross_entropy(fused, y) + (1 - lam) * F.cross_entropy(aux, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        out[f"steps_b{batch}"] = steps
        out[f"iters_b{batch}"] = iters
        out[f"train_b{batch}_s"] = time.perf_counter() - t

    t = time.perf_counter()
    with torch.no_grad():
        aux = logit_normalize(test_f @ head.weight.t())
        fused = test_logits + factor * aux * alpha
        acc = (fused.argmax(-1) == test_labels).float().mean().item()
        aux_acc = (aux.argmax(-1) == test_labels).float().mean().item()
        loss = (lam * F.cross_entropy(fused, test_labels) +
                (1 - lam) * F.cross_entropy(aux, test_labels)).item()
    out["eval_s"] = time.perf_counter() - t
    out["eval_check"] = [acc, aux_acc, loss]
    print(json.dumps(out))


main()
