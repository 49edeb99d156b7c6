// Elementwise unary operators over a flat tensor: activations (Relu, Gelu, Sigmoid, ...), math
// functions (Exp, Log, Erf, Sin, ...), Clip, Not, Cast. out[i] = f(x[i]) for i < count.
//
// Every engine element is one 32-bit word (f32 for float32/float16, i32 for int32/int64, u32 0/1
// for bool), so both buffers are declared array<u32> and each value is bitcast to the type given
// by the IN_KIND override. The OP override picks the operator: the compiler folds the switches
// below and keeps only the selected branch, so every (op, dtype) pair gets its own specialised
// pipeline from this one readable file. Op codes must match UNARY_OPS in src/kernels/elementwise.ts.
//
// The buffers hold {{WORD}}s: u32, or vec4<u32> when the element count is a multiple of 4 (each
// invocation then maps 4 words, {{APPLY}} = apply4). On llvmpipe every storage-buffer access
// compiles to a per-lane loop whose cost barely depends on its width, so 16-byte accesses cut
// the memory cost about 4x; the host picks the element type per pipeline, so no binding is ever
// declared with two types.
//
// float16 tensors hold half-precision values in f32 storage: with ROUND_F16 the result is rounded
// to the nearest half (ties to even), as the CPU reference (cpuTensor) rounds.
// Accuracy matters more than speed here (ONNX checks rtol 1e-3 on small values too), so the
// functions whose naive formulas cancel (erf, tanh, softplus, expm1, sinh, ...) are written out.

const KIND_F32: u32 = 0u;
const KIND_I32: u32 = 1u;
const KIND_BOOL: u32 = 2u;

const OP_IDENTITY: u32 = 0u;
const OP_ABS: u32 = 1u;
const OP_NEG: u32 = 2u;
const OP_SQRT: u32 = 3u;
const OP_EXP: u32 = 4u;
const OP_LOG: u32 = 5u;
const OP_ERF: u32 = 6u;
const OP_SIGMOID: u32 = 7u;
const OP_TANH: u32 = 8u;
const OP_RELU: u32 = 9u;
const OP_LEAKY_RELU: u32 = 10u; // alpha
const OP_GELU: u32 = 11u;
const OP_GELU_TANH: u32 = 12u;
const OP_RECIPROCAL: u32 = 13u;
const OP_FLOOR: u32 = 14u;
const OP_CEIL: u32 = 15u;
const OP_ROUND: u32 = 16u; // half to even, like WGSL round()
const OP_SIN: u32 = 17u;
const OP_COS: u32 = 18u;
const OP_SOFTPLUS: u32 = 19u;
const OP_HARD_SIGMOID: u32 = 20u; // alpha, beta
const OP_CLIP: u32 = 21u; // alpha = min, beta = max (bits of the input's type)
const OP_SIGN: u32 = 22u;
const OP_AFFINE: u32 = 23u; // alpha * x + beta
const OP_NOT: u32 = 24u;
const OP_CAST: u32 = 25u; // to OUT_KIND
const OP_TAN: u32 = 26u;
const OP_ASIN: u32 = 27u;
const OP_ACOS: u32 = 28u;
const OP_ATAN: u32 = 29u;
const OP_SINH: u32 = 30u;
const OP_COSH: u32 = 31u;
const OP_ASINH: u32 = 32u;
const OP_ACOSH: u32 = 33u;
const OP_ATANH: u32 = 34u;
const OP_ELU: u32 = 35u; // alpha
const OP_SELU: u32 = 36u; // alpha, beta = gamma
const OP_CELU: u32 = 37u; // alpha
const OP_SOFTSIGN: u32 = 38u;
const OP_HARD_SWISH: u32 = 39u;
const OP_MISH: u32 = 40u;
const OP_THRESHOLDED_RELU: u32 = 41u; // alpha
const OP_IS_NAN: u32 = 42u; // -> bool
const OP_IS_INF: u32 = 43u; // -> bool; alpha != 0: detect -inf, beta != 0: detect +inf
const OP_SHRINK: u32 = 44u; // alpha = lambd, beta = bias
const OP_SWISH: u32 = 45u; // x * sigmoid(alpha * x)
const OP_BITWISE_NOT: u32 = 46u;
const OP_SQUARE: u32 = 47u;

struct Params {
  count: u32,
  // Operator parameters as raw bits of the input's type (f32 for float ops, i32 for integer Clip).
  alpha: u32,
  beta: u32,
}

@group(0) @binding(0) var<storage, read> x: array<{{WORD}}>;
@group(0) @binding(1) var<storage, read_write> out: array<{{WORD}}>;
@group(0) @binding(2) var<uniform> params: Params;

override WG: u32 = 256u;
override OP: u32 = OP_IDENTITY;
override IN_KIND: u32 = KIND_F32;
override OUT_KIND: u32 = KIND_F32; // only read by OP_CAST; other ops keep the input's kind
override ROUND_F16: bool = false;
// OP_CAST to int8 (1) or uint8 (2): keep the low 8 bits of the integer result, sign-extended for
// int8 (two's complement wrap, as numpy's astype); 0: int32/int64, kept whole.
override NARROW: u32 = 0u;

// ---- float16 rounding ----

//#include "lib/f16.wgsl"

fn narrow(v: i32) -> i32 {
  switch NARROW {
    case 1u: { return (v << 24u) >> 24u; }
    case 2u: { return v & 0xff; }
    default: { return v; }
  }
}

fn float_word(v: f32) -> u32 {
  if (ROUND_F16) {
    return bitcast<u32>(round_f16(v));
  }
  return bitcast<u32>(v);
}

// NaN-propagating max_f / min_f (ONNX and PyTorch propagate NaN; WGSL's min/max need not).
//#include "lib/nan_minmax.wgsl"

// ---- accurate helpers ----

// log(1 + u) = 2 atanh(s), s = u / (2 + u), by its odd series for |u| < 0.5 (|s| < 1/3, 9 terms
// reach 1e-9): accurate for tiny u without forming 1 + u. Adapters' log() is only accurate to an
// absolute ~3e-8 near 1, and compilers may fold compensation tricks like log(w) * u / (w - 1).
fn log1p_f(u: f32) -> f32 {
  if (abs(u) < 0.5) {
    let s = u / (2.0 + u);
    let q = s * s;
    return 2.0 * s * (1.0 + q * (1.0 / 3.0 + q * (1.0 / 5.0 + q * (1.0 / 7.0 + q * (1.0 / 9.0 +
      q * (1.0 / 11.0 + q * (1.0 / 13.0 + q * (1.0 / 15.0 + q * (1.0 / 17.0)))))))));
  }
  return log(1.0 + u);
}

// log(v) with full relative accuracy near 1 (v - 1 is exact on [0.5, 2]).
fn log_f(v: f32) -> f32 {
  if (v > 0.5 && v < 2.0) {
    return log1p_f(v - 1.0);
  }
  return log(v);
}

// atan, asin, acos after Cephes (atanf.c, asinf.c): range reduction plus short polynomials,
// relative error ~1e-7 (adapters' built-ins can be off by 1e-4).
fn atan_f(v: f32) -> f32 {
  var z = abs(v);
  var base = 0.0;
  if (z > 2.414213562373095) {
    base = 1.5707963267948966;
    z = -1.0 / z;
  } else if (z > 0.4142135623730950) {
    base = 0.7853981633974483;
    z = (z - 1.0) / (z + 1.0);
  }
  let q = z * z;
  let r = base + ((((8.05374449538e-2 * q - 1.38776856032e-1) * q + 1.99777106478e-1) * q -
    3.33329491539e-1) * q * z + z);
  return select(r, -r, v < 0.0);
}

fn asin_f(v: f32) -> f32 {
  let a = abs(v);
  var x = a;
  var q = a * a;
  if (a > 0.5) {
    q = 0.5 * (1.0 - a);
    x = sqrt(q);
  }
  var r = ((((4.2163199048e-2 * q + 2.4181311049e-2) * q + 4.5470025998e-2) * q +
    7.4953002686e-2) * q + 1.6666752422e-1) * q * x + x;
  if (a > 0.5) {
    r = 1.5707963267948966 - 2.0 * r;
  }
  return select(r, -r, v < 0.0);
}

fn acos_f(v: f32) -> f32 {
  if (v < -0.5) {
    return 3.141592653589793 - 2.0 * asin_f(sqrt(0.5 * (1.0 + v)));
  }
  if (v > 0.5) {
    return 2.0 * asin_f(sqrt(0.5 * (1.0 - v)));
  }
  return 1.5707963267948966 - asin_f(v);
}

// exp(v) - 1 without cancellation near 0 (Taylor series there).
fn expm1_f(v: f32) -> f32 {
  if (abs(v) < 0.25) {
    return v * (1.0 + v * (0.5 + v * (1.0 / 6.0 + v * (1.0 / 24.0 + v * (1.0 / 120.0 +
      v * (1.0 / 720.0))))));
  }
  return exp(v) - 1.0;
}

// erfc(v), relative error < 1.2e-7 for v >= 0 (Numerical Recipes 6.2 Chebyshev fit);
// erfc(-v) = 2 - erfc(v).
fn erfc_f(v: f32) -> f32 {
  let z = abs(v);
  let t = 1.0 / (1.0 + 0.5 * z);
  let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * exp(-z * z + poly);
  return select(2.0 - r, r, v >= 0.0);
}

// erf(v): Maclaurin series near 0 (where 1 - erfc would cancel), else 1 - erfc.
fn erf_f(v: f32) -> f32 {
  if (abs(v) < 0.5) {
    let s = v * v;
    return v * (1.1283791670955126 + s * (-0.37612638903183754 + s * (0.11283791670955126 +
      s * (-0.026866170645131252 + s * (0.0052239776254421879 + s * (-0.00085483270234508532 +
      s * (0.00012055332981789664 + s * -0.000014925650358406251)))))));
  }
  return 1.0 - erfc_f(v);
}

// tanh(v): Lambert's continued fraction below 1 (no cancellation for small v), else
// (1 - e^-2|v|) / (1 + e^-2|v|), which saturates to +-1 instead of inf/inf for large |v|.
fn tanh_f(v: f32) -> f32 {
  let z = abs(v);
  if (z < 1.0) {
    let s = v * v;
    return v / (1.0 + s / (3.0 + s / (5.0 + s / (7.0 + s / (9.0 + s / (11.0 + s / 13.0))))));
  }
  let e = exp(-2.0 * z);
  return sign(v) * (1.0 - e) / (1.0 + e);
}

fn sigmoid_f(v: f32) -> f32 {
  return 1.0 / (1.0 + exp(-v));
}

// log(1 + e^v) = max(v, 0) + log1p(e^-|v|): no overflow, no loss for very negative v.
fn softplus_f(v: f32) -> f32 {
  return max_f(v, 0.0) + log1p_f(exp(-abs(v)));
}

fn sinh_f(v: f32) -> f32 {
  if (abs(v) < 0.5) {
    let s = v * v;
    return v * (1.0 + s * (1.0 / 6.0 + s * (1.0 / 120.0 + s * (1.0 / 5040.0))));
  }
  return 0.5 * (exp(v) - exp(-v));
}

fn asinh_f(v: f32) -> f32 {
  let z = abs(v);
  var r: f32;
  if (z > 4096.0) {
    r = log_f(z) + 0.69314718055994531; // log(2z) without overflowing 2z
  } else {
    r = log1p_f(z + z * z / (1.0 + sqrt(1.0 + z * z)));
  }
  return select(r, -r, v < 0.0);
}

fn acosh_f(v: f32) -> f32 {
  if (v > 4096.0) {
    return log_f(v) + 0.69314718055994531;
  }
  let t = v - 1.0;
  return log1p_f(t + sqrt(t * (v + 1.0)));
}

// ---- operators per input kind (each returns the output word) ----

fn unary_f32(v: f32) -> u32 {
  let alpha = bitcast<f32>(params.alpha);
  let beta = bitcast<f32>(params.beta);
  switch OP {
    case OP_IDENTITY: { return float_word(v); }
    case OP_ABS: { return float_word(abs(v)); }
    case OP_NEG: { return float_word(-v); }
    case OP_SQRT: { return float_word(sqrt(v)); }
    case OP_EXP: { return float_word(exp(v)); }
    case OP_LOG: { return float_word(log_f(v)); }
    case OP_ERF: { return float_word(erf_f(v)); }
    case OP_SIGMOID: { return float_word(sigmoid_f(v)); }
    case OP_TANH: { return float_word(tanh_f(v)); }
    case OP_RELU: { return float_word(max_f(v, 0.0)); }
    case OP_LEAKY_RELU: { return float_word(select(v, alpha * v, v < 0.0)); }
    // 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2): no cancellation for x << 0.
    case OP_GELU: { return float_word(0.5 * v * erfc_f(-0.70710678118654752 * v)); }
    // 0.5 x (1 + tanh(y)) = x sigmoid(2y), y = sqrt(2 / pi) (x + 0.044715 x^3).
    case OP_GELU_TANH: {
      let y = 0.79788456080286536 * (v + 0.044715 * v * v * v);
      return float_word(v / (1.0 + exp(-2.0 * y)));
    }
    case OP_RECIPROCAL: { return float_word(1.0 / v); }
    case OP_FLOOR: { return float_word(floor(v)); }
    case OP_CEIL: { return float_word(ceil(v)); }
    case OP_ROUND: { return float_word(round(v)); }
    case OP_SIN: { return float_word(sin(v)); }
    case OP_COS: { return float_word(cos(v)); }
    case OP_SOFTPLUS: { return float_word(softplus_f(v)); }
    case OP_HARD_SIGMOID: { return float_word(max_f(0.0, min_f(1.0, alpha * v + beta))); }
    case OP_CLIP: { return float_word(min_f(max_f(v, alpha), beta)); }
    case OP_SIGN: { return float_word(select(sign(v), v, is_nan(v))); }
    case OP_AFFINE: { return float_word(alpha * v + beta); }
    case OP_TAN: { return float_word(tan(v)); }
    case OP_ASIN: { return float_word(asin_f(v)); }
    case OP_ACOS: { return float_word(acos_f(v)); }
    case OP_ATAN: { return float_word(atan_f(v)); }
    case OP_SINH: { return float_word(sinh_f(v)); }
    case OP_COSH: { return float_word(0.5 * (exp(v) + exp(-v))); }
    case OP_ASINH: { return float_word(asinh_f(v)); }
    case OP_ACOSH: { return float_word(acosh_f(v)); }
    case OP_ATANH: { return float_word(0.5 * log1p_f(2.0 * v / (1.0 - v))); }
    case OP_ELU: { return float_word(select(v, alpha * expm1_f(v), v < 0.0)); }
    case OP_SELU: { return float_word(beta * select(v, alpha * expm1_f(v), v <= 0.0)); }
    case OP_CELU: { return float_word(max_f(v, 0.0) + min_f(0.0, alpha * expm1_f(v / alpha))); }
    case OP_SOFTSIGN: { return float_word(v / (1.0 + abs(v))); }
    case OP_HARD_SWISH: { return float_word(v * max_f(0.0, min_f(1.0, v / 6.0 + 0.5))); }
    case OP_MISH: { return float_word(v * tanh_f(softplus_f(v))); }
    case OP_THRESHOLDED_RELU: { return float_word(select(0.0, v, v > alpha)); }
    // Bit tests: compilers may fold v != v to false.
    case OP_IS_NAN: { return u32((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u); }
    case OP_IS_INF: {
      let bits = bitcast<u32>(v);
      let negative = bits == 0xff800000u && params.alpha != 0u;
      let positive = bits == 0x7f800000u && params.beta != 0u;
      return u32(negative || positive);
    }
    case OP_SHRINK: {
      return float_word(select(select(0.0, v - beta, v > alpha), v + beta, v < -alpha));
    }
    case OP_SWISH: { return float_word(v * sigmoid_f(alpha * v)); }
    case OP_SQUARE: { return float_word(v * v); }
    case OP_CAST: {
      switch OUT_KIND {
        case KIND_F32: { return float_word(v); }
        case KIND_I32: { return bitcast<u32>(narrow(i32(v))); } // truncates toward zero, saturates
        default: { return u32(v != 0.0); } // NaN -> true, as numpy
      }
    }
    default: { return bitcast<u32>(v); }
  }
}

fn unary_i32(v: i32) -> u32 {
  let alpha = bitcast<i32>(params.alpha);
  let beta = bitcast<i32>(params.beta);
  switch OP {
    case OP_ABS: { return bitcast<u32>(abs(v)); }
    case OP_NEG: { return bitcast<u32>(-v); }
    case OP_RELU: { return bitcast<u32>(max(v, 0)); }
    case OP_CLIP: { return bitcast<u32>(min(max(v, alpha), beta)); }
    case OP_SIGN: { return bitcast<u32>(sign(v)); }
    case OP_BITWISE_NOT: { return bitcast<u32>(~v); }
    case OP_SQUARE: { return bitcast<u32>(v * v); }
    case OP_CAST: {
      switch OUT_KIND {
        case KIND_F32: { return float_word(f32(v)); }
        case KIND_I32: { return bitcast<u32>(narrow(v)); }
        default: { return u32(v != 0); }
      }
    }
    default: { return bitcast<u32>(v); } // OP_IDENTITY
  }
}

fn unary_bool(v: u32) -> u32 {
  switch OP {
    case OP_NOT: { return 1u - v; }
    case OP_CAST: {
      if (OUT_KIND == KIND_F32) {
        return bitcast<u32>(f32(v));
      }
      return v; // bool -> int: 0/1 either way
    }
    default: { return v; } // OP_IDENTITY
  }
}

fn apply(word: u32) -> u32 {
  switch IN_KIND {
    case KIND_F32: { return unary_f32(bitcast<f32>(word)); }
    case KIND_I32: { return unary_i32(bitcast<i32>(word)); }
    default: { return unary_bool(word); }
  }
}

fn apply4(words: vec4<u32>) -> vec4<u32> {
  return vec4<u32>(apply(words.x), apply(words.y), apply(words.z), apply(words.w));
}

// params.count counts {{WORD}}s.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i < params.count) {
    out[i] = {{APPLY}}(x[i]);
  }
}
