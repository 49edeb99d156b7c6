// Packs Q, K or V for attention.wgsl where a copy cannot (half precision, columns that are not
// contiguous or not whole texels): copies the operand (addressed through element strides along
// batch, head, row, column, so the head split transposes of an exported graph are read in
// place) into a texture whose texel (c, r) holds columns 4c .. 4c + 3 of row r (rgba32float),
// or with HALVES those of rows 2r and 2r + 1 as half pairs (rgba32uint, as pack2x16float makes
// them), zero past the last row and column.
// TEXEL (f32 or u32) and FORMAT (rgba32float or rgba32uint) are placeholders: texture element
// types, which override constants cannot choose; HALVES must agree with them.

struct Params {
  rows: u32,
  cols: u32,
  heads: u32,
  // Texel columns per head, and where the heads are (lib/attention_layout.wgsl; texel rows
  // per head: whole 16-row tiles).
  head_texels: u32,
  bands: vec4<u32>,
  // Element strides along (batch, head, row, column).
  st: vec4<u32>,
}

@group(0) @binding(0) var<storage, read> pack_src: array<f32>;
@group(0) @binding(1) var pack_dst: texture_storage_2d_array<{{FORMAT}}, write>;
@group(0) @binding(2) var<uniform> params: Params;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
// Operands stored as halves, two rows per texel (the model's "f16" precision).
override HALVES: bool = false;

fn pack_value(base: u32, row: u32, col: u32) -> f32 {
  let inside = row < params.rows && col < params.cols;
  let at = select(0u, base + row * params.st.z + col * params.st.w, inside);
  return select(0.0, pack_src[at], inside);
}

//#include "lib/attention_layout.wgsl"

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  // gid: (texel column, row, batch * heads + head)
  if (gid.x >= params.head_texels || gid.y >= params.bands.z) {
    return;
  }
  let bh = gid.z;
  let base = (bh / params.heads) * params.st.x + (bh % params.heads) * params.st.y;
  let c = 4u * gid.x;
  var texel: vec4<u32>;
  if (HALVES) {
    let r = 2u * gid.y;
    texel = vec4<u32>(
      pack2x16float(vec2<f32>(pack_value(base, r, c), pack_value(base, r, c + 1u))),
      pack2x16float(vec2<f32>(pack_value(base, r, c + 2u), pack_value(base, r, c + 3u))),
      pack2x16float(vec2<f32>(pack_value(base, r + 1u, c), pack_value(base, r + 1u, c + 1u))),
      pack2x16float(vec2<f32>(pack_value(base, r + 1u, c + 2u), pack_value(base, r + 1u, c + 3u))),
    );
  } else {
    let r = gid.y;
    texel = bitcast<vec4<u32>>(vec4<f32>(pack_value(base, r, c), pack_value(base, r, c + 1u),
      pack_value(base, r, c + 2u), pack_value(base, r, c + 3u)));
  }
  let o = head_origin(params.bands, params.head_texels, params.heads, bh);
  textureStore(pack_dst, vec2<u32>(o.x + gid.x, o.y + gid.y), o.layer,
    bitcast<vec4<{{TEXEL}}>>(texel));
}
