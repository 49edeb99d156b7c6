// Einsum over up to 3 operands, from a plan made on the host (src/kernels/einsum_ref.ts): every
// label of the equation is an output label or a summed one; each operand has one element stride
// per label (0 where it lacks the label; the sum of its dims' strides where a label repeats in
// it, which walks a diagonal). One invocation per output element decomposes its index over the
// output labels, then loops over every combination of the summed labels, multiplying the
// operands' elements and accumulating. Fine for the small contractions models use (attention
// reshuffles, batched dot products); large matmul-like einsums belong on the matmul kernels.
//
// Labels are numbered output first (n_out of them), then summed (n_sum), at most 16 in all.
// Operands beyond OPERANDS are bound to operand 0 and never read. {{T}} is f32 or i32; float16
// results accumulate in f32 and are rounded to half once (ROUND_F16), as the matmul kernels do.

struct Params {
  total: u32, // output elements
  sum_total: u32, // combinations of the summed labels
  n_out: u32,
  n_sum: u32,
  sizes: array<vec4<u32>, 4>, // per label
  strides: array<array<vec4<u32>, 4>, 3>, // per operand, per label
}

@group(0) @binding(0) var<storage, read_write> out: array<{{T}}>;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> a: array<{{T}}>;
@group(0) @binding(3) var<storage, read> b: array<{{T}}>;
@group(0) @binding(4) var<storage, read> c: array<{{T}}>;

override WG: u32 = 64u;
override OPERANDS: u32 = 2u;
override ROUND_F16: bool = false;

//#include "lib/f16_finish.wgsl"

fn label_size(l: u32) -> u32 {
  return params.sizes[l / 4u][l % 4u];
}

fn stride(k: u32, l: u32) -> u32 {
  return params.strides[k][l / 4u][l % 4u];
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.total) {
    return;
  }
  // Operand offsets of this output element.
  var base = vec3<u32>(0u, 0u, 0u);
  var rest = t;
  for (var l = i32(params.n_out) - 1; l >= 0; l--) {
    let n = label_size(u32(l));
    let i = rest % n;
    rest = rest / n;
    base += i * vec3<u32>(stride(0u, u32(l)), stride(1u, u32(l)), stride(2u, u32(l)));
  }
  var acc = {{T}}(0);
  for (var s = 0u; s < params.sum_total; s++) {
    var off = base;
    var r = s;
    for (var j = i32(params.n_sum) - 1; j >= 0; j--) {
      let l = params.n_out + u32(j);
      let n = label_size(l);
      let i = r % n;
      r = r / n;
      off += i * vec3<u32>(stride(0u, l), stride(1u, l), stride(2u, l));
    }
    var term = a[off.x];
    if (OPERANDS > 1u) {
      term *= b[off.y];
    }
    if (OPERANDS > 2u) {
      term *= c[off.z];
    }
    acc += term;
  }
  out[t] = finish(acc);
}
