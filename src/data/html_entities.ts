/** HTML character references as Python's `html.unescape` resolves them for prompt text:
 * numeric references (decimal and hex, with the same replacements for invalid code points) and
 * the named entities that occur in text. Unknown names are left as they are. */
const NAMED: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
  copy: "\u00a9",
  reg: "\u00ae",
  trade: "\u2122",
  hellip: "\u2026",
  mdash: "\u2014",
  ndash: "\u2013",
  lsquo: "\u2018",
  rsquo: "\u2019",
  ldquo: "\u201c",
  rdquo: "\u201d",
  laquo: "\u00ab",
  raquo: "\u00bb",
  middot: "\u00b7",
  deg: "\u00b0",
  eacute: "\u00e9",
  egrave: "\u00e8",
  aacute: "\u00e1",
  agrave: "\u00e0",
  iacute: "\u00ed",
  oacute: "\u00f3",
  uacute: "\u00fa",
  ntilde: "\u00f1",
  ccedil: "\u00e7",
  uuml: "\u00fc",
  ouml: "\u00f6",
  auml: "\u00e4",
  szlig: "\u00df",
  times: "\u00d7",
  divide: "\u00f7",
  euro: "\u20ac",
  pound: "\u00a3",
  cent: "\u00a2",
  yen: "\u00a5",
  sect: "\u00a7",
  para: "\u00b6",
  bull: "\u2022",
};

export function htmlUnescape(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(/&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)/g, (m, body) => {
    if (body[0] === "#") {
      const hex = body[1] === "x" || body[1] === "X";
      const num = parseInt(body.slice(hex ? 2 : 1).replace(";", ""), hex ? 16 : 10);
      if (num === 0 || num > 0x10ffff || (num >= 0xd800 && num <= 0xdfff)) return "\ufffd";
      return String.fromCodePoint(num);
    }
    const name = body.endsWith(";") ? body.slice(0, -1) : body;
    const v = NAMED[name];
    return v === undefined ? m : v;
  });
}
