# Makes a few images and PIL/torchvision-style preprocessing references for the decode/preprocess test.
# Run with Debian python3-pil + python3-numpy: python3 make_refs.py tests/data/pil
import sys, json, numpy as np
from PIL import Image
out = sys.argv[1]
rng = np.random.default_rng(3)
cases = []
for i, (w, h) in enumerate([(97, 61), (40, 300), (128, 96), (33, 35)]):
    # smooth-ish content with noise so resampling is exercised
    yy, xx = np.mgrid[0:h, 0:w]
    if i % 2 == 0:  # PNG: sharp patterns and noise (lossless, so decoding must be exact)
        base = np.stack([(xx * 7 + yy * 3) % 256, (xx * yy) % 256, rng.integers(0, 256, (h, w))], -1)
    else:  # JPEG: photo-like smooth content (decoders legitimately differ on noise)
        base = np.stack([128 + 100 * np.sin(xx / 9.0), 128 + 90 * np.cos(yy / 7.0),
                         128 + 80 * np.sin((xx + yy) / 13.0)], -1)
    base = base.astype(np.uint8)
    img = Image.fromarray(base, "RGB")
    fmt = "png" if i % 2 == 0 else "jpg"
    path = f"{out}/img{i}.{fmt}"
    img.save(path, quality=92) if fmt == "jpg" else img.save(path)
    dec = np.asarray(Image.open(path).convert("RGB"))
    size = 24
    short, long = min(w, h), max(w, h)
    nl = int(size * long / short)
    rs = Image.open(path).convert("RGB").resize((size, nl) if w <= h else (nl, size), Image.BICUBIC)
    ct = int(round((rs.height - size) / 2.0)); cl = int(round((rs.width - size) / 2.0))
    cc = rs.crop((cl, ct, cl + size, ct + size))
    box = (3, 5, min(w, 3 + 20), min(h, 5 + 17))
    bx = Image.open(path).convert("RGB").crop(box).resize((size, size), Image.BICUBIC)
    np.asarray(dec).tofile(f"{out}/img{i}.decoded.bin")
    np.asarray(cc).tofile(f"{out}/img{i}.eval.bin")
    np.asarray(bx).tofile(f"{out}/img{i}.box.bin")
    cases.append({"file": path.split("/")[-1], "width": w, "height": h, "size": size, "box": box})
json.dump(cases, open(f"{out}/cases.json", "w"))
