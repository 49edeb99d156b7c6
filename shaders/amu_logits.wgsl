// AMU-Tuning: logits of a batch of feature rows against a class matrix,
//   out[r, c] = scale * sum_k A[src(r), k] * B(k, c)
// for r < rowCount and c < classes, where the rows come from the step state:
//   src(r) = GATHER ? order[rowStart + r] : rowStart + r.
// Used for the head's logits z = aux_f[batch] @ W^T (B stored [C, depth], like W) with the
// training batch gathered straight from the permutation buffer (no gathered copy is made), and
// for CLIP's logits 100 * clip_f @ clip_weights (B stored [depth, C]).
//
// Why this shape: on llvmpipe every storage load is a loop over the SIMD lanes, so what counts is
// loads per multiply-add; a vec4 load costs about as much as a scalar one. Each invocation owns a
// block of rows x classes (entry points main_4x4, main_8x8, main_16x16) held as 4 x 4 matrices in
// registers and walks k four at a time: per step it loads one vec4 per row and per class and does
// 16 FMAs per 4 x 4 matrix. The blocks are written out rather than looped over because the
// compilers we target do not reliably unroll loops over register arrays, and an array that is not
// unrolled lives in memory (measured: 10x slower). Operands whose rows are not 16-byte aligned
// (a dimension not divisible by 4) are read one value at a time from the same vec4 arrays
// (A_VEC = false, B_MODE 2/3). Rows and classes past the end are clamped on load and skipped on
// store; k past depth reads 0. Each output is a fixed-order sum (deterministic). The batch size
// comes from the step state, a storage buffer written on the GPU, so one prepared dispatch serves
// every step, including a partial last batch. Buffers must be a multiple of 16 bytes.

//#include "lib/step_state.wgsl"

struct Params {
  classes: u32,
  depth: u32,
  classTiles: u32,
  rowTiles: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> state: StepState;
@group(0) @binding(1) var<storage, read> order: array<i32>;
@group(0) @binding(2) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

override WG: u32 = 64u;
override GATHER: bool = true;
// A [rows, depth] read as vec4 along k (depth % 4 == 0), else one value at a time.
override A_VEC: bool = true;
// B layout: 0 [C, depth] vec4 along k; 1 [depth, C] vec4 along classes; 2 [C, depth] and
// 3 [depth, C] one value at a time.
override B_MODE: u32 = 0u;

struct Block {
  r0: u32,
  c0: u32,
  rowCount: u32,
}

// The block of invocation t (classes vary fastest); r0 = rowCount marks an idle invocation.
fn blockOf(gid: vec3<u32>, nwg: vec3<u32>, tr: u32, tc: u32) -> Block {
  let t = gid.x + gid.y * nwg.x * WG;
  let rowCount = state.rowCount;
  if (t >= params.classTiles * params.rowTiles) {
    return Block(rowCount, 0u, rowCount);
  }
  return Block((t / params.classTiles) * tr, (t % params.classTiles) * tc, rowCount);
}

fn aAt(i: u32) -> f32 {
  return a[i >> 2u][i & 3u];
}

fn bAt(i: u32) -> f32 {
  return b[i >> 2u][i & 3u];
}

// Element offsets of rows r .. r + 3 (clamped to the batch, gathered through the order).
fn rowBases(blk: Block, r: u32) -> vec4<u32> {
  let last = blk.rowCount - 1u;
  var src = vec4<u32>(state.rowStart) + min(vec4<u32>(r) + vec4<u32>(0u, 1u, 2u, 3u),
    vec4<u32>(last));
  if (GATHER) {
    src = vec4<u32>(u32(order[src.x]), u32(order[src.y]), u32(order[src.z]), u32(order[src.w]));
  }
  return src * params.depth;
}

// A[row, k .. k + 3], zero past depth, one value at a time.
fn aRowScalar(base: u32, k: u32) -> vec4<f32> {
  let d = params.depth;
  let last = base + d - 1u;
  let kv = vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u);
  let v = vec4<f32>(aAt(min(base + kv.x, last)), aAt(min(base + kv.y, last)),
    aAt(min(base + kv.z, last)), aAt(min(base + kv.w, last)));
  return select(vec4<f32>(0.0), v, kv < vec4<u32>(d));
}

// Rows at k .. k + 3 as matrix columns (column q = A[row q, k .. k + 3]).
fn loadA(rb: vec4<u32>, k: u32) -> mat4x4<f32> {
  if (A_VEC) {
    return mat4x4<f32>(a[(rb.x + k) >> 2u], a[(rb.y + k) >> 2u], a[(rb.z + k) >> 2u],
      a[(rb.w + k) >> 2u]);
  }
  return mat4x4<f32>(aRowScalar(rb.x, k), aRowScalar(rb.y, k), aRowScalar(rb.z, k),
    aRowScalar(rb.w, k));
}

// B[class, k .. k + 3] for B stored [C, depth], zero past depth, one value at a time.
fn bRowScalar(base: u32, k: u32) -> vec4<f32> {
  let d = params.depth;
  let last = base + d - 1u;
  let kv = vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u);
  let v = vec4<f32>(bAt(min(base + kv.x, last)), bAt(min(base + kv.y, last)),
    bAt(min(base + kv.z, last)), bAt(min(base + kv.w, last)));
  return select(vec4<f32>(0.0), v, kv < vec4<u32>(d));
}

// B(k + q, c .. c + 3) for B stored [depth, C], classes clamped, one value at a time.
fn bColsScalar(kq: u32, c: u32) -> vec4<f32> {
  let C = params.classes;
  let row = min(kq, params.depth - 1u) * C;
  let cl = C - 1u;
  let v = vec4<f32>(bAt(row + min(c, cl)), bAt(row + min(c + 1u, cl)), bAt(row + min(c + 2u, cl)),
    bAt(row + min(c + 3u, cl)));
  return select(vec4<f32>(0.0), v, kq < params.depth);
}

// Classes c .. c + 3 at k .. k + 3 as matrix columns (column q = B(k + q, c .. c + 3)).
fn loadB(c: u32, k: u32) -> mat4x4<f32> {
  let C = params.classes;
  let D = params.depth;
  if (B_MODE == 0u || B_MODE == 2u) {
    let cl = vec4<u32>(C - 1u);
    let base = min(vec4<u32>(c) + vec4<u32>(0u, 1u, 2u, 3u), cl) * D;
    if (B_MODE == 0u) {
      return transpose(mat4x4<f32>(b[(base.x + k) >> 2u], b[(base.y + k) >> 2u],
        b[(base.z + k) >> 2u], b[(base.w + k) >> 2u]));
    }
    return transpose(mat4x4<f32>(bRowScalar(base.x, k), bRowScalar(base.y, k),
      bRowScalar(base.z, k), bRowScalar(base.w, k)));
  }
  if (B_MODE == 1u) {
    let kv = vec4<u32>(k) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(D);
    let at = (min(k, D - 1u) * C + min(c, C - 4u)) >> 2u;
    let s = C >> 2u;
    let last = (D - 1u) * s + (min(c, C - 4u) >> 2u);
    return mat4x4<f32>(
      select(vec4<f32>(0.0), b[at], kv.x),
      select(vec4<f32>(0.0), b[min(at + s, last)], kv.y),
      select(vec4<f32>(0.0), b[min(at + 2u * s, last)], kv.z),
      select(vec4<f32>(0.0), b[min(at + 3u * s, last)], kv.w),
    );
  }
  return mat4x4<f32>(bColsScalar(k, c), bColsScalar(k + 1u, c), bColsScalar(k + 2u, c),
    bColsScalar(k + 3u, c));
}

// Writes a 4 x 4 block (column q = output row r + q, vector over classes c .. c + 3).
fn storeBlock(blk: Block, acc: mat4x4<f32>, r: u32, c: u32) {
  let C = params.classes;
  for (var q = 0u; q < 4u; q++) {
    let row = r + q;
    if (row >= blk.rowCount) {
      return;
    }
    for (var e = 0u; e < 4u; e++) {
      if (c + e < C) {
        out[row * C + c + e] = params.scale * acc[q][e];
      }
    }
  }
}

@compute @workgroup_size(WG)
fn main_4x4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let blk = blockOf(gid, nwg, 4u, 4u);
  if (blk.r0 >= blk.rowCount) {
    return;
  }
  let rb0 = rowBases(blk, blk.r0);
  var acc: mat4x4<f32>;
  for (var k = 0u; k < params.depth; k += 4u) {
    acc += loadB(blk.c0, k) * loadA(rb0, k);
  }
  storeBlock(blk, acc, blk.r0, blk.c0);
}

@compute @workgroup_size(WG)
fn main_8x8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let blk = blockOf(gid, nwg, 8u, 8u);
  if (blk.r0 >= blk.rowCount) {
    return;
  }
  let rb0 = rowBases(blk, blk.r0);
  let rb1 = rowBases(blk, blk.r0 + 4u);
  var acc00: mat4x4<f32>;
  var acc01: mat4x4<f32>;
  var acc10: mat4x4<f32>;
  var acc11: mat4x4<f32>;
  for (var k = 0u; k < params.depth; k += 4u) {
    let b0 = loadB(blk.c0, k);
    let b1 = loadB(blk.c0 + 4u, k);
    let a0 = loadA(rb0, k);
    let a1 = loadA(rb1, k);
    acc00 += b0 * a0;
    acc01 += b1 * a0;
    acc10 += b0 * a1;
    acc11 += b1 * a1;
  }
  storeBlock(blk, acc00, blk.r0, blk.c0);
  storeBlock(blk, acc01, blk.r0, blk.c0 + 4u);
  storeBlock(blk, acc10, blk.r0 + 4u, blk.c0);
  storeBlock(blk, acc11, blk.r0 + 4u, blk.c0 + 4u);
}

@compute @workgroup_size(WG)
fn main_16x16(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let blk = blockOf(gid, nwg, 16u, 16u);
  if (blk.r0 >= blk.rowCount) {
    return;
  }
  let rb0 = rowBases(blk, blk.r0);
  let rb1 = rowBases(blk, blk.r0 + 4u);
  let rb2 = rowBases(blk, blk.r0 + 8u);
  let rb3 = rowBases(blk, blk.r0 + 12u);
  // acc<i><j>: rows r0 + 4i .. + 3, classes c0 + 4j .. + 3.
  var acc00: mat4x4<f32>;
  var acc01: mat4x4<f32>;
  var acc02: mat4x4<f32>;
  var acc03: mat4x4<f32>;
  var acc10: mat4x4<f32>;
  var acc11: mat4x4<f32>;
  var acc12: mat4x4<f32>;
  var acc13: mat4x4<f32>;
  var acc20: mat4x4<f32>;
  var acc21: mat4x4<f32>;
  var acc22: mat4x4<f32>;
  var acc23: mat4x4<f32>;
  var acc30: mat4x4<f32>;
  var acc31: mat4x4<f32>;
  var acc32: mat4x4<f32>;
  var acc33: mat4x4<f32>;
  for (var k = 0u; k < params.depth; k += 4u) {
    let b0 = loadB(blk.c0, k);
    let b1 = loadB(blk.c0 + 4u, k);
    let b2 = loadB(blk.c0 + 8u, k);
    let b3 = loadB(blk.c0 + 12u, k);
    let a0 = loadA(rb0, k);
    acc00 += b0 * a0;
    acc01 += b1 * a0;
    acc02 += b2 * a0;
    acc03 += b3 * a0;
    let a1 = loadA(rb1, k);
    acc10 += b0 * a1;
    acc11 += b1 * a1;
    acc12 += b2 * a1;
    acc13 += b3 * a1;
    let a2 = loadA(rb2, k);
    acc20 += b0 * a2;
    acc21 += b1 * a2;
    acc22 += b2 * a2;
    acc23 += b3 * a2;
    let a3 = loadA(rb3, k);
    acc30 += b0 * a3;
    acc31 += b1 * a3;
    acc32 += b2 * a3;
    acc33 += b3 * a3;
  }
  storeBlock(blk, acc00, blk.r0, blk.c0);
  storeBlock(blk, acc01, blk.r0, blk.c0 + 4u);
  storeBlock(blk, acc02, blk.r0, blk.c0 + 8u);
  storeBlock(blk, acc03, blk.r0, blk.c0 + 12u);
  storeBlock(blk, acc10, blk.r0 + 4u, blk.c0);
  storeBlock(blk, acc11, blk.r0 + 4u, blk.c0 + 4u);
  storeBlock(blk, acc12, blk.r0 + 4u, blk.c0 + 8u);
  storeBlock(blk, acc13, blk.r0 + 4u, blk.c0 + 12u);
  storeBlock(blk, acc20, blk.r0 + 8u, blk.c0);
  storeBlock(blk, acc21, blk.r0 + 8u, blk.c0 + 4u);
  storeBlock(blk, acc22, blk.r0 + 8u, blk.c0 + 8u);
  storeBlock(blk, acc23, blk.r0 + 8u, blk.c0 + 12u);
  storeBlock(blk, acc30, blk.r0 + 12u, blk.c0);
  storeBlock(blk, acc31, blk.r0 + 12u, blk.c0 + 4u);
  storeBlock(blk, acc32, blk.r0 + 12u, blk.c0 + 8u);
  storeBlock(blk, acc33, blk.r0 + 12u, blk.c0 + 12u);
}
