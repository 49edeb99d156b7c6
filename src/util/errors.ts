/** Errors the engine expects users to hit (bad files, bad flags, missing adapter). CLI entry
 * points print their message without a stack trace and exit non-zero. */
export class EngineError extends Error {
  /** The file (or label) the error is about, once its message names it as `<source>: ...`:
   * set by the `source` option or by `inSource`, never guessed from the message text. */
  source?: string;

  constructor(message: string, options?: EngineErrorOptions) {
    const source = options?.source;
    super(source === undefined ? message : `${source}: ${message}`, options);
    this.name = "EngineError";
    this.source = source;
  }
}

export interface EngineErrorOptions extends ErrorOptions {
  /** Names the file the error is about: the message becomes `<source>: <message>`. */
  readonly source?: string;
}

/** Names `source` in an engine error that does not name a file yet (the message becomes
 * `<source>: <message>`); an error that already names one, or is not an EngineError, is left
 * as it is. Returns `e`, for `throw inSource(e, source)`. Layers that know nothing of the file
 * (a node's shape check, a tensor decoder) throw without one; the layer that loaded the file
 * names it once on the way out. */
export function inSource<E>(e: E, source: string): E {
  if (e instanceof EngineError && e.source === undefined) {
    e.message = `${source}: ${e.message}`;
    e.source = source;
  }
  return e;
}
