// Batched 2-D transpose through workgroup memory: out[b, c, r] = in[b, r, c] for an input of
// `batch` matrices of rows x cols. Every Transpose whose axes merge to "swap the last two axis
// groups" (NCHW -> NHWC, [.., M, N] -> [.., N, M], K^T for attention) reduces to this form; other
// permutations go through the strided copy (copy.wgsl).
//
// Why tiles: on a real GPU both the reads and the writes of a naive transpose cannot be
// coalesced at once. A 32x32 tile is read row by row (coalesced), parked in workgroup memory
// (33 columns so the column reads hit distinct banks), and written row by row of the output.
// Each of the 32x8 invocations moves 4 elements. Elements are raw 32-bit words (any dtype).

struct Params {
  batch: u32,
  rows: u32, // M: rows of each input matrix
  cols: u32, // N: columns of each input matrix
  tiles_r: u32, // ceil(rows / 32)
  tiles_c: u32, // ceil(cols / 32)
  tiles: u32, // batch * tiles_r * tiles_c workgroups do work
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

const TILE: u32 = 32u;
const ROWS_PER_PASS: u32 = 8u;

var<workgroup> tile: array<array<u32, 33>, 32>;

@compute @workgroup_size(32, 8)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  // The workgroup index is uniform, so leaving early keeps the barrier in uniform control flow.
  let w = wid.x + wid.y * nwg.x;
  if (w >= params.tiles) {
    return;
  }
  let tc = w % params.tiles_c;
  let tr = (w / params.tiles_c) % params.tiles_r;
  let b = w / (params.tiles_c * params.tiles_r);
  let base = b * params.rows * params.cols;

  // Read the tile: input rows tr*32.., columns tc*32 + lid.x.
  let c_in = tc * TILE + lid.x;
  for (var k = 0u; k < TILE; k += ROWS_PER_PASS) {
    let r = tr * TILE + lid.y + k;
    if (r < params.rows && c_in < params.cols) {
      tile[lid.y + k][lid.x] = src[base + r * params.cols + c_in];
    }
  }
  workgroupBarrier();

  // Write it transposed: output rows are input columns.
  let r_out = tr * TILE + lid.x;
  for (var k = 0u; k < TILE; k += ROWS_PER_PASS) {
    let c = tc * TILE + lid.y + k;
    if (c < params.cols && r_out < params.rows) {
      dst[base + c * params.rows + r_out] = tile[lid.x][lid.y + k];
    }
  }
}
