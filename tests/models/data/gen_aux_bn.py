#!/usr/bin/python3
"""Generates the small "aux ResNet with BatchNormalization nodes kept" fixture used by
tests/models/fixtures_test.ts (committed output: aux_resnet_bn_tiny/).

torchvision's ResNet/Bottleneck (the shared generator's NarrowTVResNet, stem width 8, layers
(1,1,1,1), 32x32 input) exported WITHOUT folding BatchNorm into the convolutions
(`do_constant_folding=False`, `training=PRESERVE` on an eval-mode model), so the graph holds
inference-mode BatchNormalization nodes (scale, bias, running mean/var as initializers). Every
initializer and node is then renamed to an opaque name (`w17`, `n42`), as other exporters do,
so the engine is checked not to depend on PyTorch's naming.

Needs Debian's python3-torch, python3-torchvision, python3-onnx and the shared generator:
  /usr/bin/python3 tests/models/data/gen_aux_bn.py [--generator /work/shared/fixtures/generator]
"""
import argparse
import collections
import copy
import os
import sys

import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--generator', default='/work/shared/fixtures/generator')
    ap.add_argument('--out', default=os.path.join(HERE, 'aux_resnet_bn_tiny'))
    args = ap.parse_args()
    sys.path.insert(0, args.generator)
    import clip_arch as A  # noqa: E402
    from fixture_io import write_bin, write_manifest  # noqa: E402

    os.makedirs(args.out, exist_ok=True)
    model = A.NarrowTVResNet([1, 1, 1, 1], 8)
    A.init_random_(model, 204)
    model.eval()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1204))
    fn = 'aux_resnet_bn_tiny.opset14.onnx'
    path = os.path.join(args.out, fn)
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, opset_version=14, do_constant_folding=False,
                          input_names=['pixels'], output_names=['feats'],
                          dynamic_axes={'pixels': {0: 'n'}, 'feats': {0: 'n'}},
                          training=torch.onnx.TrainingMode.PRESERVE)
    m = onnx.load(path)
    # Opaque names: initializers w<i>, intermediate values v<i>, nodes n<i>.
    g = m.graph
    keep = {i.name for i in g.input} | {o.name for o in g.output}
    rename = {}
    for i, t in enumerate(g.initializer):
        rename[t.name] = f'w{i}'
    k = 0
    for node in g.node:
        for o in node.output:
            if o and o not in keep and o not in rename:
                rename[o] = f'v{k}'
                k += 1
    for t in g.initializer:
        t.name = rename[t.name]
    for i in list(g.input):
        if i.name in rename:
            i.name = rename[i.name]
    for v in g.value_info:
        v.name = rename.get(v.name, v.name)
    for j, node in enumerate(g.node):
        node.name = f'n{j}'
        for a in range(len(node.input)):
            node.input[a] = rename.get(node.input[a], node.input[a])
        for a in range(len(node.output)):
            node.output[a] = rename.get(node.output[a], node.output[a])
    onnx.checker.check_model(m)
    onnx.save(m, path)
    counts = dict(sorted(collections.Counter(n.op_type for n in g.node).items()))
    assert counts.get('BatchNormalization', 0) > 0, counts

    with torch.no_grad():
        y32 = copy.deepcopy(model).float()(x)
        y64 = copy.deepcopy(model).double()(x.double())
    ins = [dict(name='pixels', **write_bin(args.out, 'input_pixels.bin', x, 'float32'))]
    e32 = write_bin(args.out, 'output_feats_f32.bin', y32, 'float32')
    e64 = write_bin(args.out, 'output_feats_f64.bin', y64, 'float64')
    outs = [dict(name='feats', dtype='float32', shape=e32['shape'], file_f32=e32['file'],
                 file_f64=e64['file'])]
    write_manifest(args.out, dict(
        name='aux_resnet_bn_tiny', model=fn, opset=14,
        models=[dict(file=fn, opset=14, weights_dtype='float32', op_counts=counts,
                     bytes=os.path.getsize(path))],
        inputs=ins, outputs=outs,
        config=dict(arch='torchvision.ResNet(Bottleneck), BatchNormalization kept', layers=[1, 1, 1, 1],
                    base_width=8, output_dim=256, resolution=32, weight_seed=204, input_seed=1204,
                    names='opaque (w<i>, v<i>, n<i>)'),
        max_abs_diff_f32_vs_f64=float((y32.double() - y64).abs().max()),
    ))
    print(fn, os.path.getsize(path), 'bytes', counts)


if __name__ == '__main__':
    main()
