/** A progress line for long loops (feature extraction): done/total, rate, ETA and a bar. On a
 * terminal it is rewritten in place (carriage return); elsewhere (logs, pipes, tests) a full line
 * is written at most every `quietMs` and once at the end, so logs stay readable. */

export interface ProgressOptions {
  /** Where the text goes (default: stderr). */
  write?: (text: string) => void;
  /** Rewrite in place (default: whether stderr is a terminal). */
  inPlace?: boolean;
  /** Least time between two in-place updates (default 100 ms). */
  refreshMs?: number;
  /** Least time between two lines when not in place (default 10 s). */
  quietMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /** How a count is written (default: as is); downloads count bytes and show MiB. */
  formatCount?: (n: number) => string;
}

const encoder = new TextEncoder();

function stderrWrite(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/** `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(r).padStart(2, "0")}`;
}

export class ProgressLine {
  readonly #write: (text: string) => void;
  readonly #inPlace: boolean;
  readonly #refreshMs: number;
  readonly #quietMs: number;
  readonly #now: () => number;
  readonly #format: (n: number) => string;
  readonly #formatGiven: boolean;
  readonly #start: number;
  #done = 0;
  #lastDraw = -Infinity;
  #finished = false;
  /** The count the last written line showed (off a terminal, the end is written once). */
  #lastDrawnDone = -1;

  constructor(
    readonly label: string,
    readonly total: number,
    readonly unit: string,
    options: ProgressOptions = {},
  ) {
    this.#write = options.write ?? stderrWrite;
    this.#inPlace = options.inPlace ?? (options.write ? false : stderrIsTerminal());
    this.#refreshMs = options.refreshMs ?? 100;
    this.#quietMs = options.quietMs ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
    this.#format = options.formatCount ?? String;
    this.#formatGiven = options.formatCount !== undefined;
    this.#start = this.#now();
    // Off a terminal the first line comes after `quietMs`: short loops print only their end.
    if (!this.#inPlace) this.#lastDraw = this.#start;
    else this.#draw(true);
  }

  get done(): number {
    return this.#done;
  }

  /** Seconds since the line started. */
  elapsed(): number {
    return (this.#now() - this.#start) / 1000;
  }

  /** Items per second so far. */
  rate(): number {
    const s = this.elapsed();
    return s > 0 ? this.#done / s : 0;
  }

  /** The text of the line as it stands. */
  text(): string {
    const frac = this.total > 0 ? Math.min(1, this.#done / this.total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = "#".repeat(filled) + "-".repeat(width - filled);
    const rate = this.rate();
    const left = rate > 0 ? (this.total - this.#done) / rate : NaN;
    const tail = this.#done >= this.total
      ? `in ${formatDuration(this.elapsed())}`
      : `ETA ${this.#done > 0 ? formatDuration(left) : "?"}`;
    const f = this.#format;
    const r = this.#formatGiven ? f(rate) : rate.toFixed(1);
    return `${this.label} [${bar}] ${f(this.#done)}/${f(this.total)} ${this.unit}  ` +
      `${r} ${this.unit}/s  ${tail}`;
  }

  /** Adds `count` finished items and redraws when due. */
  advance(count: number): void {
    this.#done += count;
    this.#draw(false);
  }

  #draw(force: boolean): void {
    const now = this.#now();
    const gap = this.#inPlace ? this.#refreshMs : this.#quietMs;
    if (!force && now - this.#lastDraw < gap) return;
    this.#lastDraw = now;
    const text = this.text();
    this.#lastDrawnDone = this.#done;
    if (this.#inPlace) this.#write(`\r${text}\x1b[K`);
    else this.#write(`${text}\n`);
  }

  /** Draws the final state and ends the line; returns its text. */
  finish(): string {
    if (this.#finished) return this.text();
    this.#finished = true;
    const text = this.text();
    if (this.#inPlace) this.#write(`\r${text}\x1b[K\n`);
    // Off a terminal the last update may already have written the finished count.
    else if (this.#lastDrawnDone !== this.#done) this.#write(`${text}\n`);
    return text;
  }
}
