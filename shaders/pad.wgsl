// Pad (modes constant / reflect / edge / wrap) and, through wrap mode, Tile. For every output
// multi-index o and axis d the source coordinate is s = o_d - pad_begin[d], mapped into the
// input's [0, dim) by the mode:
//   constant: outside -> the output element is `value_bits`
//   reflect:  mirror without repeating the edge (numpy "reflect"; period 2*(dim-1))
//   edge:     clamp to the nearest edge
//   wrap:     s mod dim (Tile is wrap with pad_begin 0 and the output repeats*dim long)
// Negative pads crop (s starts inside the input). Elements are raw 32-bit words (any dtype).
//
// Why this shape: one invocation fills a run of up to `chunk` elements along the last output
// axis. The leading coordinates (and whether the whole run lies in constant padding) are worked
// out once per run; only the last axis is mapped per element.

struct Params {
  rank: u32, // 1..8
  threads: u32,
  chunks_per_row: u32,
  chunk: u32,
  value_bits: u32, // constant mode fill value, as raw bits
  out_shape: array<vec4<u32>, 2>,
  in_shape: array<vec4<u32>, 2>,
  in_strides: array<vec4<u32>, 2>,
  pad_begin: array<vec4<i32>, 2>,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

override WG: u32 = 64u;
// 0 constant, 1 reflect, 2 edge, 3 wrap.
override MODE: u32 = 0u;

// Maps coordinate `s` into [0, n); returns -1 for constant-mode padding.
fn source_coord(s: i32, n: i32) -> i32 {
  if (s >= 0 && s < n) {
    return s;
  }
  if (MODE == 0u) {
    return -1;
  }
  if (MODE == 1u) {
    if (n == 1) {
      return 0;
    }
    let period = 2 * (n - 1);
    var m = abs(s) % period;
    if (m >= n) {
      m = period - m;
    }
    return m;
  }
  if (MODE == 2u) {
    return clamp(s, 0, n - 1);
  }
  return ((s % n) + n) % n;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG;
  if (t >= params.threads) {
    return;
  }
  let last = params.rank - 1u;
  let row = t / params.chunks_per_row;
  let start = (t % params.chunks_per_row) * params.chunk;
  let out_last = params.out_shape[last / 4u][last % 4u];
  var in_row = 0u;
  var in_padding = false; // the whole run lies in constant padding
  var rest = row;
  for (var d = i32(last) - 1; d >= 0; d--) {
    let size = params.out_shape[d / 4][d % 4];
    let o = i32(rest % size);
    rest = rest / size;
    let s = source_coord(
      o - params.pad_begin[d / 4][d % 4],
      i32(params.in_shape[d / 4][d % 4]),
    );
    if (s < 0) {
      in_padding = true;
    } else {
      in_row += u32(s) * params.in_strides[d / 4][d % 4];
    }
  }
  let n_last = i32(params.in_shape[last / 4u][last % 4u]);
  let begin_last = params.pad_begin[last / 4u][last % 4u];
  let base = row * out_last + start;
  let n = min(params.chunk, out_last - start);
  for (var k = 0u; k < n; k++) {
    var s = -1;
    if (!in_padding) {
      s = source_coord(i32(start + k) - begin_last, n_last);
    }
    if (s < 0) {
      dst[base + k] = params.value_bits;
    } else {
      dst[base + k] = src[in_row + u32(s)];
    }
  }
}
