// Hand-designed pen paths for the digits 0–9, written the way a person writes them (stroke order,
// direction, where the pen lifts), in the pad's 280×280 coordinates. A stroke is a list of
// pieces: `s` = key points joined by a smooth Catmull-Rom curve (a hand's curve), `l` = straight
// lines through the points (a hand's corner). The test replays them as mouse events along the
// path, point by point: the page sees pointerdown / pointermove… / pointerup, as with a mouse.

const s = (...pts) => ({ smooth: true, pts });
const l = (...pts) => ({ smooth: false, pts });

export const DIGITS = [
  // 0: one oval, counter-clockwise from the top, closing a little past the start.
  [[s([140, 45], [100, 68], [82, 140], [98, 210], [140, 238], [182, 210], [198, 140], [182, 68], [140, 45], [126, 54])]],
  // 1: one down stroke, slightly slanted.
  [[l([150, 42], [137, 238])]],
  // 2: the hook over the top, down to the left, then the base to the right without lifting.
  [[s([88, 92], [105, 56], [145, 42], [185, 62], [192, 105], [165, 150], [120, 195], [84, 234]), l([84, 234], [206, 231])]],
  // 3: the upper bump, back in to the middle, the lower bump.
  [[s([88, 68], [125, 42], [175, 50], [188, 88], [160, 124], [128, 137], [162, 145], [195, 178], [190, 218], [145, 242], [90, 226])]],
  // 4: down and across in one stroke, then the long down stroke on the right.
  [[l([114, 42], [84, 162], [212, 160])], [l([178, 62], [172, 245])]],
  // 5: the short down stroke and the belly in one, then the top bar.
  [[l([108, 48], [101, 128]), s([101, 128], [140, 118], [185, 135], [200, 180], [180, 225], [135, 240], [88, 222])], [l([108, 46], [198, 44])]],
  // 6: from the top right down the left side, round the bottom loop and back in.
  [[s([182, 45], [140, 62], [108, 100], [95, 150], [100, 200], [135, 238], [178, 222], [192, 185], [170, 150], [130, 145], [100, 172])]],
  // 7: the top bar and the diagonal in one stroke.
  [[l([75, 55], [205, 55], [122, 242])]],
  // 8: from the upper right, an S down to the bottom, and back up across the middle.
  [[s([182, 75], [160, 45], [118, 48], [98, 80], [115, 120], [150, 145], [185, 182], [180, 225], [140, 242], [98, 222],
    [95, 182], [128, 148], [165, 118], [182, 82], [172, 58])]],
  // 9: the loop counter-clockwise from its right side, then the stem down without lifting.
  [[s([188, 80], [170, 50], [130, 45], [98, 70], [98, 110], [125, 135], [165, 128], [188, 92]), l([188, 92], [180, 242])]],
];

function catmullRom(pts, step) {
  const out = [pts[0]];
  const at = (i) => pts[Math.max(0, Math.min(pts.length - 1, i))];
  for (let i = 0; i < pts.length - 1; i++) {
    const [p0, p1, p2, p3] = [at(i - 1), at(i), at(i + 1), at(i + 2)];
    const n = Math.max(1, Math.ceil(Math.hypot(p2[0] - p1[0], p2[1] - p1[1]) / step));
    for (let k = 1; k <= n; k++) {
      const t = k / n;
      const t2 = t * t;
      const t3 = t2 * t;
      const c = (a, b, c_, d) => 0.5 * (2 * b + (-a + c_) * t + (2 * a - 5 * b + 4 * c_ - d) * t2 + (-a + 3 * b - 3 * c_ + d) * t3);
      out.push([c(p0[0], p1[0], p2[0], p3[0]), c(p0[1], p1[1], p2[1], p3[1])]);
    }
  }
  return out;
}

function straight(pts, step) {
  const out = [pts[0]];
  for (let i = 0; i < pts.length - 1; i++) {
    const [a, b] = [pts[i], pts[i + 1]];
    const n = Math.max(1, Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / step));
    for (let k = 1; k <= n; k++) out.push([a[0] + (b[0] - a[0]) * (k / n), a[1] + (b[1] - a[1]) * (k / n)]);
  }
  return out;
}

/**
 * The points a hand passes through for one digit: an array of strokes, each an array of [x, y]
 * about `step` px apart, with a slow wobble of about a pixel (a hand is never a ruler; seeded,
 * so every run draws the same thing).
 */
export function strokePaths(digit, step = 4) {
  let seed = 1 + digit * 7919;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  return DIGITS[digit].map((stroke) => {
    const pts = stroke.flatMap((piece, i) => {
      const p = piece.smooth ? catmullRom(piece.pts, step) : straight(piece.pts, step);
      return i === 0 ? p : p.slice(1);
    });
    const phase = rand() * Math.PI * 2;
    return pts.map(([x, y], k) => [x + Math.sin(k * 0.09 + phase) * 1.2, y + Math.cos(k * 0.07 + phase) * 1.2]);
  });
}

/**
 * Draws `digit` on the pad with real mouse events: press, move along every point, release,
 * for each stroke. `box` is the pad's bounding box in CSS pixels (the pad may be shown smaller
 * than 280 px on narrow screens: the paths are scaled to it).
 */
export async function drawDigit(page, box, digit) {
  const k = box.width / 280;
  for (const stroke of strokePaths(digit)) {
    const [x0, y0] = stroke[0];
    await page.mouse.move(box.x + x0 * k, box.y + y0 * k);
    await page.mouse.down();
    for (const [x, y] of stroke.slice(1)) await page.mouse.move(box.x + x * k, box.y + y * k);
    await page.mouse.up();
  }
}
