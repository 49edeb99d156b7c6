// Where head `bh` (batch * heads + head) of an attention operand starts in its texture (see
// src/kernels/attention_layout.ts): heads side by side along x, `bands.x` per band, `bands.y`
// bands per batch entry, each band `bands.z` texel rows tall, `bands.w` bands per layer.
struct HeadOrigin {
  x: u32,
  y: u32,
  layer: u32,
}

fn head_origin(bands: vec4<u32>, head_texels: u32, heads: u32, bh: u32) -> HeadOrigin {
  let h = bh % heads;
  let band = (bh / heads) * bands.y + h / bands.x;
  return HeadOrigin((h % bands.x) * head_texels, (band % bands.w) * bands.z, band / bands.w);
}
