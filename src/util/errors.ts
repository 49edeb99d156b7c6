/** Errors the engine expects users to hit (bad files, bad flags, missing adapter). CLI entry
 * points print their message without a stack trace and exit non-zero. */
export class EngineError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EngineError";
  }
}
