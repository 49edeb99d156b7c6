// Packs one matrix operand of matmul_texture.wgsl: copies a strided matrix (any transpose,
// broadcast batch axes) from a storage buffer into a texture array holding consecutive columns
// per texel, one layer per output batch entry: four f32 in rgba32float (`pack`), or eight halves
// in rgba32uint (`pack_f16`, two per u32, as pack2x16float makes them). Rows and columns are
// zero-padded up to the texture size, so the multiply needs no bounds checks and no transposed
// reads. Constant operands (weights) are packed the same way once, on the host
// (src/kernels/matmul_pack.ts), and then never again.

struct Params {
  // Texture size in texels and layers.
  width: u32,
  height: u32,
  layers: u32,
  batch_rank: u32,
  // Valid rows / columns of the source; the rest is written as 0.
  rows: u32,
  cols: u32,
  // Element (row, col) of layer z is src[batch offset of z + row * row_stride + col * col_stride].
  row_stride: u32,
  col_stride: u32,
  batch_shape: array<vec4<u32>, 2>,
  batch_strides: array<vec4<u32>, 2>,
}

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;

@group(0) @binding(0) var<storage, read> pack_src: array<f32>;
@group(0) @binding(1) var pack_dst: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(1) var pack_dst_f16: texture_storage_2d_array<rgba32uint, write>;
@group(0) @binding(2) var<uniform> params: Params;

// Texel coordinates (x, y, layer) of an invocation, and the source offset of row y of the layer.
// The pack runs on a 3-D grid (texels along x, rows along y, layers along z) rather than a flat
// index, which would take integer divisions per texel to recover the coordinates.
fn pack_site(gid: vec3<u32>) -> vec4<u32> {
  var base = 0u;
  var rest = gid.z;
  for (var d = i32(params.batch_rank) - 1; d >= 0; d--) {
    let size = params.batch_shape[d / 4][d % 4];
    base += (rest % size) * params.batch_strides[d / 4][d % 4];
    rest = rest / size;
  }
  return vec4<u32>(gid.x, gid.y, gid.z, base + gid.y * params.row_stride);
}

// Element (row site.y, column col) of the source, 0 past the matrix (the texture's padding).
fn pack_value(site: vec4<u32>, col: u32) -> f32 {
  let inside = site.y < params.rows && col < params.cols;
  return select(0.0, pack_src[select(0u, site.w + col * params.col_stride, inside)], inside);
}

@compute @workgroup_size(WG_X, WG_Y)
fn pack(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= params.width || gid.y >= params.height) {
    return;
  }
  let site = pack_site(gid);
  let c = 4u * site.x;
  let texel = vec4<f32>(pack_value(site, c), pack_value(site, c + 1u), pack_value(site, c + 2u),
    pack_value(site, c + 3u));
  textureStore(pack_dst, site.xy, site.z, texel);
}

@compute @workgroup_size(WG_X, WG_Y)
fn pack_f16(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= params.width || gid.y >= params.height) {
    return;
  }
  let site = pack_site(gid);
  let c = 8u * site.x;
  let texel = vec4<u32>(
    pack2x16float(vec2<f32>(pack_value(site, c), pack_value(site, c + 1u))),
    pack2x16float(vec2<f32>(pack_value(site, c + 2u), pack_value(site, c + 3u))),
    pack2x16float(vec2<f32>(pack_value(site, c + 4u), pack_value(site, c + 5u))),
    pack2x16float(vec2<f32>(pack_value(site, c + 6u), pack_value(site, c + 7u))),
  );
  textureStore(pack_dst_f16, site.xy, site.z, texel);
}
