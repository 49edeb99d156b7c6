// `finish` for kernels whose element type is the placeholder {{T}} (f32 or i32) and whose
// float16 outputs are flagged by `override ROUND_F16: bool`: the including shader declares both.

//#include "lib/f16.wgsl"

// v in the output's precision: float16 outputs are stored rounded to half (see DType).
fn finish(v: {{T}}) -> {{T}} {
  if (ROUND_F16) {
    return {{T}}(round_f16(f32(v)));
  }
  return v;
}
