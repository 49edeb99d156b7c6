// OneHot: out is indices' shape with a `depth` axis inserted, viewed as [outer, depth, inner]
// against indices as [outer, inner]. out = on where the index (truncated to an integer, negative
// ones counting from the end) equals the position along depth, off elsewhere; an index outside
// [-depth, depth) gives an all-off line, as ONNX specifies (not an error).
// values = [off, on]. {{IT}} is the indices' storage type (f32 or i32), {{T}} the output's.

struct Params {
  total: u32,
  depth: u32,
  inner: u32,
}

@group(0) @binding(0) var<storage, read> indices: array<{{IT}}>;
@group(0) @binding(1) var<storage, read> values: array<{{T}}>;
@group(0) @binding(2) var<storage, read_write> out: array<{{T}}>;
@group(0) @binding(3) var<uniform> params: Params;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.total) {
    return;
  }
  let inner = params.inner;
  let d = (t / inner) % params.depth;
  let o = t / (inner * params.depth);
  var i = i32(indices[o * inner + t % inner]);
  if (i < 0) {
    i += i32(params.depth);
  }
  out[t] = select(values[0], values[1], i == i32(d));
}
