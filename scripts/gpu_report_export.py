"""Runs the fixture generator's export.py (argv passed on) under the device's newer PyTorch.

export.py was written for torch 1.13's TorchScript exporter. Newer torch.onnx.export defaults
to the dynamo exporter (dynamo=True since torch 2.9), which emits other graphs and opsets, and
drops some legacy keywords. This wrapper asks for the TorchScript exporter (dynamo=False) where
the keyword exists and leaves out keywords the installed torch no longer accepts, then calls
export.main() unchanged.

usage: python3 gpu_report_export.py GENERATOR_DIR --full OUTDIR [export.py flags]"""
import functools
import inspect
import sys

import torch

generator = sys.argv.pop(1)
sys.path.insert(0, generator)
original = torch.onnx.export
accepted = inspect.signature(original).parameters


@functools.wraps(original)
def export(*args, **kwargs):
    if "dynamo" in accepted:
        kwargs.setdefault("dynamo", False)
    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    return original(*args, **kwargs)


torch.onnx.export = export
import export as generator_export  # noqa: E402  (after the patch: it binds torch.onnx at call time)

generator_export.main()
