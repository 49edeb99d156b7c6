"""PyTorch peer of the GPU report (scripts/gpu-report.sh): the report's models, built by the
fixture generator's own code with the folder's recorded weight seed, on the same inputs (the
folder's stored rows cycled to the batch, as the engine's rows do), each checked against the
folder's float64 output before it is timed; then one AMU training epoch with the same maths as
the engine (nn.Linear head, autograd, AdamW, per-iteration cosine), its first step checked
against the same step recomputed in float64.

usage: python3 gpu_report_torch.py SPEC.json OUT.json
SPEC: {"generator": DIR, "device": "cuda"|"cpu", "runs": N, "batches": [1, 8],
       "modes": ["fp32", "tf32", "fp16"], "models": [{"label": L, "dir": D}, ...],
       "amu": {"train": N, "classes": C, "clip_dim": Dc, "aux_dim": Da, "batch": B} | null}
Writes {"torch", "device", "rows": [...], "amu": {...}, "notes": [...]} to OUT.json."""
import copy
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# Bounds on max|y - ref| / max|ref| against the folder's float64 output, per mode: float32 as
# the engine's model rows (1e-4); TF32 rounds matmul operands to 10 mantissa bits and fp16 keeps
# activations in half precision through every layer, so they get the looser bounds of those
# formats (METHOD.md: tf32 near 3e-4 per product, compounded over the layers).
BOUNDS = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 3e-2}


def cycle_rows(a, batch):
    return np.concatenate([a[i % a.shape[0]][None] for i in range(batch)], axis=0)


def load_model(generator, d):
    sys.path.insert(0, generator)
    import export as E  # the generator's own builders: same architecture and init
    import clip_arch as A
    m = json.load(open(os.path.join(d, "manifest.json")))
    cfg = m["config"]
    # Tiny fixtures record their seed; --full folders say 'random seed 7' (export_full's seed).
    seed = cfg.get("weight_seed", 7)
    model = E.build(cfg)
    A.init_random_(model, seed)
    return m, model.eval()


def read_io(d, m):
    i, o = m["inputs"][0], m["outputs"][0]
    dt = np.int64 if i["dtype"] == "int64" else np.float32
    x = np.fromfile(os.path.join(d, i["file"]), dtype=dt).reshape(i["shape"])
    ref = np.fromfile(os.path.join(d, o["file_f64"]), dtype=np.float64).reshape(o["shape"])
    return x, ref


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_runs(fn, device, runs):
    """Median and min ms per invocation after two warm-ups; CUDA events on the GPU."""
    for _ in range(2):
        fn()
    sync(device)
    samples = []
    for _ in range(runs):
        if device == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            samples.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), min(samples)


def mode_skip(mode, device):
    if device != "cuda" and mode == "tf32":
        return "TF32 exists on CUDA GPUs only"
    if device != "cuda" and mode == "fp16":
        return "half-precision convolutions are not implemented on the CPU"
    return None


def run_models(spec, out):
    device, runs = spec["device"], spec["runs"]
    for entry in spec["models"]:
        m, model32 = load_model(spec["generator"], entry["dir"])
        x_all, ref_all = read_io(entry["dir"], m)
        for mode in spec["modes"]:
            skip = mode_skip(mode, device)
            for batch in spec["batches"]:
                row = {"model": entry["label"], "mode": mode, "batch": batch}
                if skip:
                    out["rows"].append(dict(row, status="skipped", note=skip))
                    continue
                try:
                    torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
                    torch.backends.cudnn.allow_tf32 = mode == "tf32"
                    dtype = torch.float16 if mode == "fp16" else torch.float32
                    # A half copy for fp16: converting the fp32 model in place would round it.
                    model = copy.deepcopy(model32).to(device=device, dtype=dtype) \
                        if mode == "fp16" else model32.to(device)
                    x = torch.from_numpy(cycle_rows(x_all, batch)).to(device)
                    if x.is_floating_point():
                        x = x.to(dtype)
                    ref = cycle_rows(ref_all, batch)
                    with torch.no_grad():
                        y = model(x).double().cpu().numpy()
                        err = float(np.abs(y - ref).max() / np.abs(ref).max())
                        row.update(rel_error=err, bound=BOUNDS[mode])
                        if not err <= BOUNDS[mode]:  # NaN fails too
                            out["rows"].append(dict(row, status="wrong"))
                            continue
                        med, best = time_runs(lambda: model(x), device, runs)
                    out["rows"].append(dict(row, status="ok", ms=med, min_ms=best,
                                            items_per_s=batch * 1000 / med))
                except Exception as e:  # a failed row is reported, the rest still run
                    out["rows"].append(dict(row, status="failed", note=str(e).split("\n")[0]))
                finally:
                    model = None
                    if device == "cuda":
                        torch.cuda.empty_cache()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def amu_loss(head_w, f, clip_logits, y, alpha=0.5, lam=0.35):
    z = f @ head_w.t()
    aux = (z - z.mean(-1, keepdim=True)) / z.std(-1, keepdim=True)
    fused = clip_logits + aux * alpha  # uncertainty 'none': factor 1
    return lam * F.cross_entropy(fused, y) + (1 - lam) * F.cross_entropy(aux, y)


def run_amu(spec, out):
    a, device = spec["amu"], spec["device"]
    N, C, Dc, Da, B = a["train"], a["classes"], a["clip_dim"], a["aux_dim"], a["batch"]
    g = torch.Generator().manual_seed(0)
    clip = F.normalize(torch.rand(N, Dc, generator=g) - 0.5, dim=-1)
    aux = F.normalize(torch.rand(N, Da, generator=g) - 0.5, dim=-1)
    weights = F.normalize(torch.rand(Dc, C, generator=g) - 0.5, dim=0)
    labels = torch.arange(N) % C
    perm = torch.randperm(N, generator=g)
    t0 = time.perf_counter()
    clip, aux, weights, labels, perm = (t.to(device) for t in (clip, aux, weights, labels, perm))
    logits = 100.0 * clip @ weights
    w0 = torch.zeros(C, Da, device=device).index_add_(0, labels, aux) / (N / C)
    sync(device)
    setup_ms = (time.perf_counter() - t0) * 1000
    iters = math.ceil(N / B)
    idx0 = perm[:B]
    # The first step's loss in float64 (on the CPU), the check of the float32 step below.
    want = amu_loss(w0.double().cpu(), aux[idx0].double().cpu(), logits[idx0].double().cpu(),
                    labels[idx0].cpu()).item()
    for tf32 in (False, True) if device == "cuda" else (False,):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        head = torch.nn.Linear(Da, C, bias=False).to(device)
        head.weight.data = w0.clone()
        opt = torch.optim.AdamW(head.parameters(), lr=1e-3, eps=1e-4, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters)
        first = amu_loss(head.weight, aux[idx0], logits[idx0], labels[idx0]).item()
        err = abs(first - want) / abs(want)
        bound = 5e-3 if tf32 else 1e-4
        key = "tf32" if tf32 else "fp32"
        if not err <= bound:
            out["amu"][key] = dict(status="wrong", rel_error=err, bound=bound)
            continue
        sync(device)
        t = time.perf_counter()
        for i in range(iters):
            idx = perm[i * B:(i + 1) * B]
            loss = amu_loss(head.weight, aux[idx], logits[idx], labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        sync(device)
        out["amu"][key] = dict(status="ok", steps=iters, epoch_ms=(time.perf_counter() - t) * 1000,
                               setup_ms=setup_ms, rel_error=err, bound=bound)
    torch.backends.cuda.matmul.allow_tf32 = False


def main():
    spec = json.load(open(sys.argv[1]))
    device = spec["device"]
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_report_torch.py: CUDA requested but torch.cuda.is_available() is False")
    if device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    out = {"torch": torch.__version__, "device": device, "rows": [], "amu": {}, "notes": [],
           "device_name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
           "threads": torch.get_num_threads()}
    run_models(spec, out)
    if spec.get("amu"):
        run_amu(spec, out)
    with open(sys.argv[2], "w") as f:
        json.dump(out, f, indent=1)


main()
