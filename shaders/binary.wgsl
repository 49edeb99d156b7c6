// Elementwise binary (Add, Mul, Pow, Less, And, PRelu, ...) and ternary (Where, Clip with tensor
// bounds) operators with numpy broadcasting: out[i] = f(a[ia(i)], b[ib(i)] [, c[ic(i)]]).
//
// Every engine element is one 32-bit word (f32 for float32/float16, i32 for int32/int64, u32 0/1
// for bool), so all buffers are array<u32> and values are bitcast to the types named by the
// A_KIND / B_KIND overrides (they differ only for Pow, whose exponent may be int or float).
// The OP override picks the operator; the compiler folds the switches so every (op, kinds,
// indexing modes) combination is its own specialised pipeline. Op codes must match BINARY_OPS /
// TERNARY_OPS in src/kernels/elementwise.ts.
//
// Broadcasting: the host merges output dims that every input treats alike and picks, per input,
// the cheapest way to find its element (override A_MODE / B_MODE / C_MODE):
//   MODE_IDENTITY: same shape as the output, element i (the common case: no div/mod at all);
//   MODE_BLOCK:    the input's varying dims are one contiguous block of the output's dims
//                  (scalar, trailing bias, per-channel [C,1,1]): element (i / inner) % extent;
//   MODE_STRIDED:  anything else: walk the (merged, rank <= 8) output dims with 0-strides.
// Shapes and strides live in the uniform, so one pipeline serves every shape. Each invocation
// computes RUN consecutive outputs and steps those indices incrementally: on the CPU adapter
// integer division runs lane by lane, and per-element div/mod made broadcasts 2-3x slower than
// same-shape ops; with runs they cost about the same.

const KIND_F32: u32 = 0u;
const KIND_I32: u32 = 1u;
const KIND_BOOL: u32 = 2u;

const MODE_IDENTITY: u32 = 0u;
const MODE_BLOCK: u32 = 1u;
const MODE_STRIDED: u32 = 2u;

const OP_ADD: u32 = 0u;
const OP_SUB: u32 = 1u;
const OP_MUL: u32 = 2u;
const OP_DIV: u32 = 3u; // integers truncate toward zero
const OP_POW: u32 = 4u;
const OP_MOD: u32 = 5u; // result takes the divisor's sign (Python %)
const OP_FMOD: u32 = 6u; // result takes the dividend's sign (C fmod)
const OP_MAX: u32 = 7u;
const OP_MIN: u32 = 8u;
const OP_EQUAL: u32 = 9u; // comparisons -> bool
const OP_LESS: u32 = 10u;
const OP_GREATER: u32 = 11u;
const OP_LESS_OR_EQUAL: u32 = 12u;
const OP_GREATER_OR_EQUAL: u32 = 13u;
const OP_AND: u32 = 14u; // bool
const OP_OR: u32 = 15u;
const OP_XOR: u32 = 16u;
const OP_PRELU: u32 = 17u; // a < 0 ? a * b : a
const OP_BITWISE_AND: u32 = 18u; // integers
const OP_BITWISE_OR: u32 = 19u;
const OP_BITWISE_XOR: u32 = 20u;

const TERNARY_SELECT: u32 = 0u; // Where: a is the bool condition, b/c any kind
const TERNARY_CLAMP: u32 = 1u; // min(max(a, b), c), numpy's clip (c wins when b > c)

struct Params {
  count: u32, // output elements
  rank: u32, // merged output dims (MODE_STRIDED only)
  inner: vec4<u32>, // MODE_BLOCK divisor per input (x = a, y = b, z = c)
  extent: vec4<u32>, // MODE_BLOCK modulus per input
  shape: array<vec4<u32>, 2>, // merged output dims, up to 8
  strides: array<vec4<u32>, 6>, // per input (a: 0-1, b: 2-3, c: 4-5), 0 along broadcast dims
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read> b: array<u32>;
@group(0) @binding(4) var<storage, read> c: array<u32>;

override WG: u32 = 256u;
override RUN: u32 = 8u; // consecutive output elements per invocation
override OP: u32 = OP_ADD;
override A_KIND: u32 = KIND_F32; // also the result's kind for arithmetic ops
override B_KIND: u32 = KIND_F32;
override A_MODE: u32 = MODE_IDENTITY;
override B_MODE: u32 = MODE_IDENTITY;
override C_MODE: u32 = MODE_IDENTITY;
override ROUND_F16: bool = false;

// ---- broadcast indexing ----

// Each invocation computes RUN consecutive output elements and walks every input's source
// index incrementally (a cursor), so the integer divisions that locate an element (which the CPU
// adapter runs lane by lane) happen once per run instead of once per element.
struct Cursor {
  pos: u32, // MODE_BLOCK: position within the inner block; MODE_STRIDED: innermost coordinate
  src: u32, // element of the input
}

fn strided_index(i: u32, input: u32) -> u32 {
  var rest = i;
  var index = 0u;
  for (var d = i32(params.rank) - 1; d >= 0; d--) {
    let dim = params.shape[d / 4][d % 4];
    index += (rest % dim) * params.strides[input * 2u + u32(d / 4)][d % 4];
    rest /= dim;
  }
  return index;
}

fn innermost_dim() -> u32 {
  let d = params.rank - 1u;
  return params.shape[d / 4u][d % 4u];
}

fn cursor_at(i: u32, input: u32, mode: u32) -> Cursor {
  switch mode {
    case MODE_IDENTITY: { return Cursor(0u, i); }
    case MODE_BLOCK: {
      let inner = params.inner[input];
      return Cursor(i % inner, (i / inner) % params.extent[input]);
    }
    default: { return Cursor(i % innermost_dim(), strided_index(i, input)); }
  }
}

// The cursor of element next = (element of c) + 1.
fn cursor_step(c: Cursor, next: u32, input: u32, mode: u32) -> Cursor {
  switch mode {
    case MODE_IDENTITY: { return Cursor(0u, c.src + 1u); }
    case MODE_BLOCK: {
      if (c.pos + 1u < params.inner[input]) {
        return Cursor(c.pos + 1u, c.src);
      }
      let src = c.src + 1u;
      return Cursor(0u, select(src, 0u, src == params.extent[input]));
    }
    default: {
      if (c.pos + 1u < innermost_dim()) {
        let d = params.rank - 1u;
        return Cursor(c.pos + 1u, c.src + params.strides[input * 2u + d / 4u][d % 4u]);
      }
      return Cursor(0u, strided_index(next, input));
    }
  }
}

// ---- float16 rounding ----

//#include "lib/f16.wgsl"

fn float_word(v: f32) -> u32 {
  if (ROUND_F16) {
    return bitcast<u32>(round_f16(v));
  }
  return bitcast<u32>(v);
}

// ---- Pow ----

// x^y for every real case numpy defines: integral exponents of negative bases keep their sign,
// x^0 = 1 (also for 0 and NaN); a negative base with a fractional exponent gives NaN.
fn pow_f32(x: f32, y: f32) -> f32 {
  if (y == 0.0) {
    return 1.0;
  }
  if (y == floor(y)) {
    let magnitude = pow(abs(x), y);
    let odd = fract(y * 0.5) != 0.0;
    return select(magnitude, -magnitude, x < 0.0 && odd);
  }
  return pow(x, y);
}

// Integer base: exact repeated squaring (wrapping like the integer types) for a non-negative
// integral exponent, else the float power truncated toward zero.
fn pow_i32(x: i32, y_word: u32) -> i32 {
  var e: i32;
  if (B_KIND == KIND_I32) {
    e = bitcast<i32>(y_word);
  } else {
    let y = bitcast<f32>(y_word);
    if (y != floor(y) || y < 0.0 || y > 2147483520.0) {
      return i32(pow_f32(f32(x), y));
    }
    e = i32(y);
  }
  if (e < 0) {
    // Only |x| = 1 has a non-zero integer result.
    if (x == 1) {
      return 1;
    }
    if (x == -1) {
      return select(1, -1, (e & 1) == 1);
    }
    return 0;
  }
  var result = 1;
  var base = x;
  var k = e;
  while (k > 0) {
    if ((k & 1) == 1) {
      result *= base;
    }
    base *= base;
    k = k >> 1u;
  }
  return result;
}

// ---- Mod ----

// x - y * q with q = trunc(x / y) (C fmod) or floor(x / y) (Python %). fma keeps y * q unrounded,
// so the remainder is exact whenever q is; a q off by one from the rounded division is corrected.
fn mod_f32(x: f32, y: f32, truncated: bool) -> f32 {
  let q = select(floor(x / y), trunc(x / y), truncated);
  var r = fma(-y, q, x);
  if (truncated) {
    if (r != 0.0 && (r < 0.0) != (x < 0.0)) {
      r += y * sign(x) * sign(y); // q was one too far from zero
    }
  } else if (r != 0.0 && (r < 0.0) != (y < 0.0)) {
    r += y; // q was one too large
  }
  return r;
}

// ---- operators per kind of a (each returns the output word) ----

fn exponent_f32(word: u32) -> f32 {
  if (B_KIND == KIND_I32) {
    return f32(bitcast<i32>(word));
  }
  return bitcast<f32>(word);
}

// NaN-propagating max_f / min_f (ONNX and PyTorch propagate NaN; WGSL's min/max need not).
//#include "lib/nan_minmax.wgsl"

fn binary_f32(x: f32, y_word: u32) -> u32 {
  let y = bitcast<f32>(y_word);
  switch OP {
    case OP_ADD: { return float_word(x + y); }
    case OP_SUB: { return float_word(x - y); }
    case OP_MUL: { return float_word(x * y); }
    case OP_DIV: { return float_word(x / y); }
    case OP_POW: { return float_word(pow_f32(x, exponent_f32(y_word))); }
    case OP_MOD: { return float_word(mod_f32(x, y, false)); }
    case OP_FMOD: { return float_word(mod_f32(x, y, true)); }
    case OP_MAX: { return float_word(max_f(x, y)); }
    case OP_MIN: { return float_word(min_f(x, y)); }
    case OP_EQUAL: { return u32(x == y); }
    case OP_LESS: { return u32(x < y); }
    case OP_GREATER: { return u32(x > y); }
    case OP_LESS_OR_EQUAL: { return u32(x <= y); }
    case OP_GREATER_OR_EQUAL: { return u32(x >= y); }
    case OP_PRELU: { return float_word(select(x, x * y, x < 0.0)); }
    default: { return 0u; }
  }
}

fn binary_i32(x: i32, y_word: u32) -> u32 {
  let y = bitcast<i32>(y_word);
  switch OP {
    case OP_ADD: { return bitcast<u32>(x + y); }
    case OP_SUB: { return bitcast<u32>(x - y); }
    case OP_MUL: { return bitcast<u32>(x * y); }
    case OP_DIV: { return bitcast<u32>(x / y); } // WGSL: x / 0 = x
    case OP_POW: { return bitcast<u32>(pow_i32(x, y_word)); }
    case OP_MOD: {
      let r = x % y;
      return bitcast<u32>(select(r, r + y, r != 0 && ((r < 0) != (y < 0))));
    }
    case OP_FMOD: { return bitcast<u32>(x % y); }
    case OP_MAX: { return bitcast<u32>(max(x, y)); }
    case OP_MIN: { return bitcast<u32>(min(x, y)); }
    case OP_EQUAL: { return u32(x == y); }
    case OP_LESS: { return u32(x < y); }
    case OP_GREATER: { return u32(x > y); }
    case OP_LESS_OR_EQUAL: { return u32(x <= y); }
    case OP_GREATER_OR_EQUAL: { return u32(x >= y); }
    case OP_PRELU: { return bitcast<u32>(select(x, x * y, x < 0)); }
    case OP_BITWISE_AND: { return bitcast<u32>(x & y); }
    case OP_BITWISE_OR: { return bitcast<u32>(x | y); }
    case OP_BITWISE_XOR: { return bitcast<u32>(x ^ y); }
    default: { return 0u; }
  }
}

fn binary_bool(x: u32, y: u32) -> u32 {
  switch OP {
    case OP_EQUAL: { return u32(x == y); }
    case OP_AND: { return x & y; }
    case OP_OR: { return x | y; }
    case OP_XOR: { return x ^ y; }
    default: { return 0u; }
  }
}

fn apply_binary(x: u32, y: u32) -> u32 {
  switch A_KIND {
    case KIND_F32: { return binary_f32(bitcast<f32>(x), y); }
    case KIND_I32: { return binary_i32(bitcast<i32>(x), y); }
    default: { return binary_bool(x, y); }
  }
}

fn apply_ternary(x: u32, y: u32, z: u32) -> u32 {
  if (OP == TERNARY_SELECT) {
    return select(z, y, x != 0u); // words are copied as they are: any kind
  }
  switch A_KIND {
    case KIND_F32: {
      return bitcast<u32>(min_f(max_f(bitcast<f32>(x), bitcast<f32>(y)), bitcast<f32>(z)));
    }
    default: {
      return bitcast<u32>(min(max(bitcast<i32>(x), bitcast<i32>(y)), bitcast<i32>(z)));
    }
  }
}

@compute @workgroup_size(WG)
fn binary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let start = (gid.x + gid.y * nwg.x * WG) * RUN;
  if (start >= params.count) {
    return;
  }
  var ca = cursor_at(start, 0u, A_MODE);
  var cb = cursor_at(start, 1u, B_MODE);
  for (var k = 0u; k < RUN; k++) {
    let i = start + k;
    if (i >= params.count) {
      break;
    }
    out[i] = apply_binary(a[ca.src], b[cb.src]);
    ca = cursor_step(ca, i + 1u, 0u, A_MODE);
    cb = cursor_step(cb, i + 1u, 1u, B_MODE);
  }
}

@compute @workgroup_size(WG)
fn ternary(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let start = (gid.x + gid.y * nwg.x * WG) * RUN;
  if (start >= params.count) {
    return;
  }
  var ca = cursor_at(start, 0u, A_MODE);
  var cb = cursor_at(start, 1u, B_MODE);
  var cc = cursor_at(start, 2u, C_MODE);
  for (var k = 0u; k < RUN; k++) {
    let i = start + k;
    if (i >= params.count) {
      break;
    }
    out[i] = apply_ternary(a[ca.src], b[cb.src], c[cc.src]);
    ca = cursor_step(ca, i + 1u, 0u, A_MODE);
    cb = cursor_step(cb, i + 1u, 1u, B_MODE);
    cc = cursor_step(cc, i + 1u, 2u, C_MODE);
  }
}
