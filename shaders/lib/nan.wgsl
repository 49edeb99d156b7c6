// NaN tested on the bits, so that a compiler's finite-math assumption cannot fold the test away.
fn is_nan(v: f32) -> bool {
  return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}
