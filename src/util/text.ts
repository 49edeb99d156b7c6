/** Text shown to users that holds bytes read from a file (tensor names, npy headers, archive
 * member names, parser excerpts): a leaf module with no imports. */

/** `text` with control characters escaped (`\x00`, `\n`), except newlines that start an
 * indented continuation line (the lists some messages end with), so an error about a corrupt
 * file stays one readable line and cannot send terminal escapes. */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]|\n(?! )/g,
    (c) => c === "\n" ? "\\n" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
