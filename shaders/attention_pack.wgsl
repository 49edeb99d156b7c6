// Packs Q, K or V for attention.wgsl: copies the operand (addressed through element strides
// along batch, head, row, column, so the head split transposes of an exported graph are read in
// place) into a texture whose texel (d, r) holds rows 4r .. 4r + 3 of column d (rgba32float), or
// with HALVES rows 8r .. 8r + 7 as half pairs (rgba32uint, as pack2x16float makes them), zero
// past the last row (Q is multiplied by `scale` on the way).
// TEXEL (f32 or u32) and FORMAT (rgba32float or rgba32uint) are placeholders: texture element
// types, which override constants cannot choose; HALVES must agree with them.

struct Params {
  rows: u32,
  cols: u32,
  heads: u32,
  // Texel rows per (batch, head) (a multiple of 4: whole 16-row tiles) and heads per layer.
  tex_rows: u32,
  heads_per_layer: u32,
  scale: f32,
  // Element strides along (batch, head, row, column).
  st: vec4<u32>,
}

@group(0) @binding(0) var<storage, read> pack_src: array<f32>;
@group(0) @binding(1) var pack_dst: texture_storage_2d_array<{{FORMAT}}, write>;
@group(0) @binding(2) var<uniform> params: Params;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
// Operands stored as halves, eight rows per texel (the model's "f16" precision); f32 arithmetic.
override HALVES: bool = false;

fn pack_value(base: u32, row: u32, col: u32) -> f32 {
  let inside = row < params.rows;
  let at = select(0u, base + row * params.st.z + col * params.st.w, inside);
  let x = pack_src[at] * params.scale;
  return select(0.0, x, inside);
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  // gid: (column, texel row, batch * heads + head)
  if (gid.x >= params.cols || gid.y >= params.tex_rows) {
    return;
  }
  let bh = gid.z;
  let base = (bh / params.heads) * params.st.x + (bh % params.heads) * params.st.y;
  var texel: vec4<u32>;
  if (HALVES) {
    let r = 8u * gid.y;
    texel = vec4<u32>(
      pack2x16float(vec2<f32>(pack_value(base, r, gid.x), pack_value(base, r + 1u, gid.x))),
      pack2x16float(vec2<f32>(pack_value(base, r + 2u, gid.x), pack_value(base, r + 3u, gid.x))),
      pack2x16float(vec2<f32>(pack_value(base, r + 4u, gid.x), pack_value(base, r + 5u, gid.x))),
      pack2x16float(vec2<f32>(pack_value(base, r + 6u, gid.x), pack_value(base, r + 7u, gid.x))),
    );
  } else {
    let r = 4u * gid.y;
    texel = bitcast<vec4<u32>>(vec4<f32>(pack_value(base, r, gid.x),
      pack_value(base, r + 1u, gid.x), pack_value(base, r + 2u, gid.x),
      pack_value(base, r + 3u, gid.x)));
  }
  let y = (bh % params.heads_per_layer) * params.tex_rows + gid.y;
  textureStore(pack_dst, vec2<u32>(gid.x, y), bh / params.heads_per_layer,
    bitcast<vec4<{{TEXEL}}>>(texel));
}
