// AMU-Tuning: L2-normalises the rows of a feature matrix in place, x[r, :] /= ||x[r, :]||_2,
// as `x / x.norm(dim=-1, keepdim=True)` does for the cached CLIP and auxiliary features.
//
// One workgroup per row: each invocation sums the squares of a strided slice of the row, a
// fixed-order tree in workgroup memory adds the partial sums (deterministic: no atomics), then
// every invocation divides its slice by the norm. Rows are independent, so a dispatch of R
// workgroups (split over x/y for large R) covers the matrix. A zero row stays zero-over-zero
// (NaN), as in PyTorch.

struct Params {
  rows: u32,
  cols: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

const WG: u32 = {{WG}}u;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) {
    return;
  }
  let base = row * params.cols;
  var sum = 0.0;
  for (var k = lid; k < params.cols; k += WG) {
    let v = x[base + k];
    sum += v * v;
  }
  partial[lid] = sum;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      partial[lid] += partial[lid + stride];
    }
    workgroupBarrier();
  }
  let norm = sqrt(partial[0]);
  for (var k = lid; k < params.cols; k += WG) {
    x[base + k] = x[base + k] / norm;
  }
}
