// Nearest float16 value (ties to even) of v, as f32. Integer arithmetic on the bits, so the
// result does not depend on how the adapter implements pack2x16float (whose overflow behaviour
// WGSL leaves indeterminate). The host references round the same way (roundToF16).
fn round_f16(v: f32) -> f32 {
  let bits = bitcast<u32>(v);
  let sign = bits & 0x80000000u;
  let mag = bits & 0x7fffffffu;
  if (mag >= 0x7f800000u) {
    return v; // inf, nan
  }
  if (mag >= 0x477ff000u) {
    return bitcast<f32>(sign | 0x7f800000u); // >= 65520 rounds past the largest half (65504)
  }
  if (mag < 0x38800000u) {
    // Below 2^-14: half subnormals are multiples of 2^-24 (scaling by 2^24 is exact).
    let q = round(abs(v) * 16777216.0) / 16777216.0;
    return bitcast<f32>(sign | bitcast<u32>(q));
  }
  // Normal: keep 10 of the 23 mantissa bits, rounding the dropped 13 to nearest even.
  let lsb = (mag >> 13u) & 1u;
  let rounded = (mag + 0xfffu + lsb) & 0xffffe000u;
  return bitcast<f32>(sign | rounded);
}

// round_f16 of each component.
fn round_f16_4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(round_f16(v.x), round_f16(v.y), round_f16(v.z), round_f16(v.w));
}
