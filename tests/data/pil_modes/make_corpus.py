# Makes small images in every PNG colour type / bit depth and the JPEG variants a dataset may hold,
# and the pixels PIL's Image.open(path).convert("RGB") gives for each (raw HWC uint8, NAME.rgb).
# The PNGs are written by hand (PIL cannot write 2/4-bit grey, 16-bit colour, or choose filters
# and interlacing), each row with a different filter type so every unfilter path is exercised.
# The YCCK JPEG is a 4-channel JPEG written by PIL whose channels hold Y, Cb, Cr, K, with the
# Adobe marker's transform byte patched to 2 (YCCK): libjpeg then converts it as YCCK.
# The committed references come from Pillow 9.4.0 (Debian 12 python3-pil). Run with Debian's
# python3-pil + python3-numpy (not a pyenv python without PIL):
#   /usr/bin/python3 tests/data/pil_modes/make_corpus.py tests/data/pil_modes
import json, struct, sys, zlib
import numpy as np
from PIL import Image

out = sys.argv[1]
W, H = 13, 7
rng = np.random.default_rng(13)
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """One scanline's samples (ints) as bytes at `depth` bits each, MSB first."""
    if depth == 16:
        return b"".join(struct.pack(">H", int(s)) for s in samples)
    if depth == 8:
        return bytes(int(s) for s in samples)
    bits = "".join(format(int(s), f"0{depth}b") for s in samples)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_rows(rows, bpp):
    """Filters scanlines, filter type = row index mod 5."""
    out, prev = b"", bytes(len(rows[0])) if rows else b""
    for i, raw in enumerate(rows):
        t = i % 5
        f = bytearray()
        for x, v in enumerate(raw):
            a = raw[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][t]
            f.append((v - pred) & 0xFF)
        out += bytes([t]) + bytes(f)
        prev = raw
    return out


def write_png(path, pixels, color_type, depth, palette=None, trns=None, interlace=False):
    """pixels: int array [H, W, channels] of sample values."""
    h, w, ch = pixels.shape
    bpp = max(1, ch * depth // 8)
    if interlace:
        data = b""
        for x0, y0, dx, dy in ADAM7:
            sub = pixels[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                data += filter_rows([pack_row(r.reshape(-1), depth) for r in sub], bpp)
    else:
        data = filter_rows([pack_row(r.reshape(-1), depth) for r in pixels], bpp)
    png = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        png += chunk(b"PLTE", bytes(int(v) for v in np.asarray(palette).reshape(-1)))
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"IDAT", zlib.compress(data, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


cases = []


def record(name, note):
    img = Image.open(f"{out}/{name}")
    mode = img.mode
    rgb = np.asarray(img.convert("RGB"))
    assert rgb.shape == (H, W, 3), (name, rgb.shape)
    rgb.tofile(f"{out}/{name.rsplit('.', 1)[0]}.rgb")
    cases.append({"file": name, "width": W, "height": H, "pil_mode": mode, "note": note})


def png_case(name, color_type, depth, palette_size=None, trns=False, interlace=False, vals=None):
    ch = CHANNELS[color_type]
    top = (1 << depth) - 1 if palette_size is None else palette_size - 1
    px = vals if vals is not None else rng.integers(0, top + 1, (H, W, ch))
    if color_type == 0 and depth == 16 and vals is None:
        # Half the pixels below 256 so PIL's clipping of mode "I" to 8 bits shows both ways.
        px[::2] = rng.integers(0, 256, px[::2].shape)
    palette = rng.integers(0, 256, (palette_size, 3)) if palette_size else None
    t = None
    if trns:
        if color_type == 3:
            t = bytes(int(v) for v in rng.integers(0, 256, max(1, palette_size // 2)))
        elif color_type == 0:
            t = struct.pack(">H", int(px[0, 0, 0]))
        else:
            t = struct.pack(">HHH", *(int(v) for v in px[0, 0]))
    write_png(f"{out}/{name}", px, color_type, depth, palette, t, interlace)
    record(name, f"PNG colour type {color_type}, {depth}-bit" + (", tRNS" if trns else "") +
           (", Adam7" if interlace else ""))


for d in (1, 2, 4, 8, 16):
    png_case(f"grey{d}.png", 0, d)
png_case("grey8_trns.png", 0, 8, trns=True)
png_case("grey2_adam7.png", 0, 2, interlace=True)
png_case("rgb8.png", 2, 8)
png_case("rgb16.png", 2, 16)
png_case("rgb8_trns.png", 2, 8, trns=True)
for d in (1, 2, 4, 8):
    png_case(f"pal{d}.png", 3, d, palette_size=1 << d)
    png_case(f"pal{d}_trns.png", 3, d, palette_size=1 << d, trns=True)
# A palette shorter than the indices used (PIL reads the missing entries as black).
png_case("pal4_short.png", 3, 4, palette_size=11, vals=rng.integers(0, 16, (H, W, 1)))
png_case("pal1_adam7.png", 3, 1, palette_size=2, interlace=True)
png_case("pal4_adam7.png", 3, 4, palette_size=16, trns=True, interlace=True)
png_case("greyalpha8.png", 4, 8)
png_case("greyalpha16.png", 4, 16)
png_case("rgba8.png", 6, 8)
png_case("rgba16.png", 6, 16)
png_case("rgba8_adam7.png", 6, 8, interlace=True)
png_case("rgb16_adam7.png", 2, 16, interlace=True)

# JPEGs: smooth photo-like content (JPEG decoders are compared on what cameras produce).
yy, xx = np.mgrid[0:H, 0:W]
smooth = np.stack([128 + 100 * np.sin(xx / 3.0), 128 + 90 * np.cos(yy / 2.0),
                   128 + 80 * np.sin((xx + yy) / 4.0)], -1).astype(np.uint8)
rgb_img = Image.fromarray(smooth, "RGB")
for name, opts, note in [
    ("jpeg_444.jpg", dict(subsampling=0), "baseline 4:4:4"),
    ("jpeg_422.jpg", dict(subsampling=1), "baseline 4:2:2"),
    ("jpeg_420.jpg", dict(subsampling=2), "baseline 4:2:0"),
    ("jpeg_progressive.jpg", dict(subsampling=2, progressive=True), "progressive 4:2:0"),
]:
    rgb_img.save(f"{out}/{name}", quality=90, **opts)
    record(name, note)
rgb_img.convert("L").save(f"{out}/jpeg_grey.jpg", quality=90)
record("jpeg_grey.jpg", "grayscale")
cmyk = np.stack([smooth[..., 0], smooth[..., 1], 255 - smooth[..., 2],
                 (xx * 19 % 256).astype(np.uint8)], -1).astype(np.uint8)
Image.fromarray(cmyk, "CMYK").save(f"{out}/jpeg_cmyk.jpg", quality=90)
record("jpeg_cmyk.jpg", "CMYK, Adobe marker (inverted)")
Image.fromarray(cmyk, "CMYK").save(f"{out}/jpeg_cmyk_prog.jpg", quality=90, progressive=True)
record("jpeg_cmyk_prog.jpg", "CMYK, Adobe marker, progressive")
# YCCK: libjpeg turns stored (Y, Cb, Cr, K) into (255 - R, 255 - G, 255 - B, K); PIL writes CMYK
# inverted ("CMYK;I"), so the CMYK JPEG above stores 255 - cmyk, which YCCK gives back when
# (R, G, B) = cmyk[..., :3] and K = 255 - cmyk[..., 3]. PIL is handed 255 - the values to store.
r, g, b = (cmyk[..., i].astype(np.float64) for i in range(3))
y = 0.299 * r + 0.587 * g + 0.114 * b
cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
stored = np.stack([y, cb, cr, 255 - cmyk[..., 3]], -1).round().clip(0, 255).astype(np.uint8)
Image.fromarray(255 - stored, "CMYK").save(f"{out}/jpeg_ycck.jpg", quality=90)
data = bytearray(open(f"{out}/jpeg_ycck.jpg", "rb").read())
adobe = data.index(b"\xff\xee\x00\x0eAdobe")
data[adobe + 15] = 2  # APP14: marker, length, "Adobe", version, flags0, flags1, transform
open(f"{out}/jpeg_ycck.jpg", "wb").write(bytes(data))
record("jpeg_ycck.jpg", "YCCK (Adobe transform 2)")
# A CMYK JPEG without the Adobe marker: PIL still reads it as inverted ("assume adobe conventions").
data = open(f"{out}/jpeg_cmyk.jpg", "rb").read()
adobe = data.index(b"\xff\xee\x00\x0eAdobe")
open(f"{out}/jpeg_cmyk_noadobe.jpg", "wb").write(data[:adobe] + data[adobe + 16:])
record("jpeg_cmyk_noadobe.jpg", "CMYK without Adobe marker")
# EXIF orientation 6 (rotate 90): Image.open does not apply it, so neither do we.
exif = Image.Exif()
exif[0x0112] = 6
rgb_img.save(f"{out}/jpeg_exif_rotate.jpg", quality=90, exif=exif.tobytes())
record("jpeg_exif_rotate.jpg", "EXIF orientation 6, not applied")
open(f"{out}/cases.json", "w").write(json.dumps(cases, indent=2) + "\n")  # as deno fmt writes it
