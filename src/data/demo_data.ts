/** The bundled demo's labelled images, generated (no downloads): a small image folder of
 * coloured shapes on noisy backgrounds, written as PNG in the generic image-folder layout, so
 * the demo runs the same decode -> preprocess -> encode path as real data. */
import { encode as encodePng } from "fast-png";
import { join } from "node:path";
import { seededRandom } from "../util/random.ts";

export const DEMO_CLASSES = [
  "red circle",
  "green square",
  "blue triangle",
  "yellow ring",
  "purple stripes",
] as const;

type Rgb = [number, number, number];

const COLORS: Rgb[] = [[220, 40, 40], [40, 180, 60], [50, 70, 220], [230, 210, 40], [150, 60, 190]];

function inside(cls: number, x: number, y: number, cx: number, cy: number, r: number): boolean {
  const dx = x - cx, dy = y - cy;
  switch (cls) {
    case 0:
      return dx * dx + dy * dy <= r * r;
    case 1:
      return Math.abs(dx) <= r * 0.8 && Math.abs(dy) <= r * 0.8;
    case 2:
      return dy <= r * 0.7 && dy >= -r && Math.abs(dx) <= (dy + r) * 0.6;
    case 3: {
      const d = Math.sqrt(dx * dx + dy * dy);
      return d <= r && d >= r * 0.55;
    }
    default:
      return Math.abs(dx) <= r && Math.abs(dy) <= r && Math.floor((dx + r) / (r / 2.5)) % 2 === 0;
  }
}

/** One image of class `cls`: size x size RGB with a jittered shape, colour and noise. */
export function demoImage(cls: number, size: number, random: () => number): Uint8Array {
  const data = new Uint8Array(size * size * 3);
  const bg: Rgb = [random() * 120 + 60, random() * 120 + 60, random() * 120 + 60];
  const color = COLORS[cls].map((c) => Math.min(255, Math.max(0, c + (random() - 0.5) * 50)));
  const r = size * (0.22 + random() * 0.15);
  const cx = size * (0.35 + random() * 0.3), cy = size * (0.35 + random() * 0.3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const on = inside(cls, x, y, cx, cy, r);
      for (let c = 0; c < 3; c++) {
        const v = (on ? color[c] : bg[c]) + (random() - 0.5) * 40;
        data[(y * size + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(v)));
      }
    }
  }
  return data;
}

/** Writes `<root>/{train,test}/<class>/<i>.png`; returns the root. Deterministic per seed. */
export function writeDemoImageFolder(
  root: string,
  opts: { trainPerClass?: number; testPerClass?: number; size?: number; seed?: number } = {},
): string {
  const { trainPerClass = 16, testPerClass = 10, size = 40, seed = 1 } = opts;
  const random = seededRandom(seed);
  for (const [split, count] of [["train", trainPerClass], ["test", testPerClass]] as const) {
    DEMO_CLASSES.forEach((name, cls) => {
      const dir = join(root, split, name.replace(" ", "_"));
      Deno.mkdirSync(dir, { recursive: true });
      for (let i = 0; i < count; i++) {
        const png = encodePng({
          width: size,
          height: size,
          data: demoImage(cls, size, random),
          channels: 3,
        });
        Deno.writeFileSync(join(dir, `${String(i).padStart(3, "0")}.png`), png);
      }
    });
  }
  return root;
}
