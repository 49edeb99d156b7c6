// Fused scaled-dot-product attention:
//   out[b, h, i, :] = sum_j softmax_j(scale * Q[b, h, i, :] . K[b, h, j, :] + mask[b, h, i, j])
//                     * V[b, h, j, :]
// computed without the [Sq, Sk] score matrix in memory: keys are streamed 16 at a time, with a
// running maximum m and sum l of exp(score - m) per query; when m grows, l and the output
// accumulator are rescaled by exp(m_old - m_new) ("online softmax", as in flash attention).
//
// Q, K and V are read from textures whose texel (c, r) holds columns 4c .. 4c + 3 of row r
// (rgba32float), or with HALVES those of rows 2r and 2r + 1 as half pairs (rgba32uint); where
// each head is: lib/attention_layout.wgsl. Why textures: on llvmpipe a textureLoad is a
// branch-free gather, cheaper per value than a storage-buffer load (a loop over the SIMD lanes),
// and loads are what these products cost there; halves halve the loads again. Why rows of
// columns: that is the operands' own layout, so a float32 operand whose rows are whole texels is
// copied in (copyBufferToTexture, a memcpy per row on llvmpipe) instead of packed by a shader
// (attention_pack.wgsl, for the rest).
//
// `main`: one invocation per 16 query rows of one (batch, head). Per block of 16 keys it computes
// the 16 x 16 scores as a register tile of 4 x 4 blocks (per four columns: sixteen texel loads of
// Q and sixteen of K, eight each with halves, for 1024 multiply-adds, like the matmul kernel's
// 16 x 16 blocks), scales them, turns them into probabilities in place, and adds P V to its 16
// output rows, which live in a function-scope array (per four columns: sixteen texel loads of V,
// or eight, for 1024 multiply-adds). The output is written once at the end, through strides (so
// the head merge transpose is free too).
//
// TEXEL (f32 or u32) is a placeholder: the texture element type, which override constants cannot
// choose; HALVES must agree with it. The register tiles are written out with constant indices
// rather than looped over: loops over register arrays are not reliably unrolled, and an array
// that is not unrolled lives in memory.

struct Params {
  sq: u32,
  sk: u32,
  dqk: u32,
  dv: u32,
  heads: u32,
  // 16-row query tiles per (batch, head), and in all.
  q_tiles: u32,
  tiles: u32,
  // Causal masking: key j is visible to query i when j <= i + causal_offset.
  causal_offset: i32,
  // Heads of K and V, and query heads per K/V head (grouped-query attention; 1 otherwise).
  kv_heads: u32,
  kv_group: u32,
  // Multiplies Q K^T.
  scale: f32,
  // With SOFTCAP: scores become softcap * tanh(score / softcap) before the mask is applied.
  softcap: f32,
  // Texel columns per head of Q/K and of V.
  qk_texels: u32,
  v_texels: u32,
  // Where each operand's heads are (lib/attention_layout.wgsl).
  q_layout: vec4<u32>,
  k_layout: vec4<u32>,
  v_layout: vec4<u32>,
  // Element strides along (batch, head, row, column) of the output and of the mask (broadcast
  // axes 0).
  o_st: vec4<u32>,
  m_st: vec4<u32>,
}

@group(0) @binding(0) var tex_q: texture_2d_array<{{TEXEL}}>;
@group(0) @binding(1) var tex_k: texture_2d_array<{{TEXEL}}>;
@group(0) @binding(2) var tex_v: texture_2d_array<{{TEXEL}}>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

override WG: u32 = 64u;
// Operands stored as halves, two rows of four columns per texel (the model's "f16" precision);
// f32 arithmetic.
override HALVES: bool = false;
// An additive mask operand (else `mask` is an unread stand-in).
override HAS_MASK: bool = false;
// The mask is boolean (u32 0 / 1, true = visible) instead of additive.
override MASK_BOOL: bool = false;
// Scores are soft-capped (ONNX Attention's softcap).
override SOFTCAP: bool = false;
// Keys after i + causal_offset are skipped (a causal mask known at plan time).
override CAUSAL: bool = false;
// Round results to half precision (float16 tensors are stored as f32).
override ROUND_F16: bool = false;
// Rows that see no key at all give 0 (ONNX Attention) instead of 0 / 0 = NaN (what Softmax over
// a row of -inf gives, so the fused decomposed pattern keeps it).
override EMPTY_ROWS_ZERO: bool = false;

// Output columns in fours (rounded up): sizes the accumulator.
const DV4: u32 = {{DV4}}u;
// Start of the running maximum, and the score of a key that is not visible: finite, so that
// exp(m_old - m_new) is never exp(inf - inf).
const LOWEST: f32 = -3.4028234e38;

// 16 x 16 scores: block qc * 4 + jc covers queries 4qc .. 4qc + 3 (the rows of each column) and
// keys 4jc .. 4jc + 3 (the columns).
alias Tile = array<mat4x4<f32>, 16>;
alias Quad = array<vec4<f32>, 4>;
// Four columns of 16 rows: block g's column i is row 4g + i (a vec4 over the four columns).
alias Rows16 = array<mat4x4<f32>, 4>;

//#include "lib/attention_layout.wgsl"

fn texel(t: texture_2d_array<{{TEXEL}}>, o: HeadOrigin, r: u32, c: u32) -> vec4<u32> {
  return bitcast<vec4<u32>>(textureLoad(t, vec2<u32>(o.x + c, o.y + r), o.layer, 0));
}

// Texel column c of rows r .. r + 3 as the matrix's columns: four float32 texels, or two texels
// of half pairs (rows 2y and 2y + 1 per texel y).
fn block4(t: texture_2d_array<{{TEXEL}}>, o: HeadOrigin, r: u32, c: u32) -> mat4x4<f32> {
  if (HALVES) {
    let a = texel(t, o, r / 2u, c);
    let b = texel(t, o, r / 2u + 1u, c);
    return mat4x4<f32>(vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y)),
      vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w)),
      vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y)),
      vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w)));
  }
  return mat4x4<f32>(bitcast<vec4<f32>>(texel(t, o, r, c)),
    bitcast<vec4<f32>>(texel(t, o, r + 1u, c)), bitcast<vec4<f32>>(texel(t, o, r + 2u, c)),
    bitcast<vec4<f32>>(texel(t, o, r + 3u, c)));
}

// Texel column c of rows r0 .. r0 + 15.
fn rows16(t: texture_2d_array<{{TEXEL}}>, o: HeadOrigin, r0: u32, c: u32) -> Rows16 {
  return Rows16(block4(t, o, r0, c), block4(t, o, r0 + 4u, c), block4(t, o, r0 + 8u, c),
    block4(t, o, r0 + 12u, c));
}

// One score block gains four columns' products: entry r of column c (query r, key c) gains
// dot(q[r], k[c]), where q's columns are four query rows and k's four key rows (each a vec4
// over the four columns). qt = transpose(q) holds column i of the four queries in qt[i], so
// each key column is four vec4 fmas.
fn outer(acc: mat4x4<f32>, q: mat4x4<f32>, k: mat4x4<f32>) -> mat4x4<f32> {
  let qt = transpose(q);
  return mat4x4<f32>(
    fma(qt[3], vec4<f32>(k[0].w), fma(qt[2], vec4<f32>(k[0].z),
      fma(qt[1], vec4<f32>(k[0].y), fma(qt[0], vec4<f32>(k[0].x), acc[0])))),
    fma(qt[3], vec4<f32>(k[1].w), fma(qt[2], vec4<f32>(k[1].z),
      fma(qt[1], vec4<f32>(k[1].y), fma(qt[0], vec4<f32>(k[1].x), acc[1])))),
    fma(qt[3], vec4<f32>(k[2].w), fma(qt[2], vec4<f32>(k[2].z),
      fma(qt[1], vec4<f32>(k[2].y), fma(qt[0], vec4<f32>(k[2].x), acc[2])))),
    fma(qt[3], vec4<f32>(k[3].w), fma(qt[2], vec4<f32>(k[3].z),
      fma(qt[1], vec4<f32>(k[3].y), fma(qt[0], vec4<f32>(k[3].x), acc[3])))));
}

fn update(s: ptr<function, Tile>, a: Rows16, b: Rows16) {
  (*s)[0] = outer((*s)[0], a[0], b[0]);
  (*s)[1] = outer((*s)[1], a[0], b[1]);
  (*s)[2] = outer((*s)[2], a[0], b[2]);
  (*s)[3] = outer((*s)[3], a[0], b[3]);
  (*s)[4] = outer((*s)[4], a[1], b[0]);
  (*s)[5] = outer((*s)[5], a[1], b[1]);
  (*s)[6] = outer((*s)[6], a[1], b[2]);
  (*s)[7] = outer((*s)[7], a[1], b[3]);
  (*s)[8] = outer((*s)[8], a[2], b[0]);
  (*s)[9] = outer((*s)[9], a[2], b[1]);
  (*s)[10] = outer((*s)[10], a[2], b[2]);
  (*s)[11] = outer((*s)[11], a[2], b[3]);
  (*s)[12] = outer((*s)[12], a[3], b[0]);
  (*s)[13] = outer((*s)[13], a[3], b[1]);
  (*s)[14] = outer((*s)[14], a[3], b[2]);
  (*s)[15] = outer((*s)[15], a[3], b[3]);
}

// Four output columns of one query, rescaled by alpha, plus P V over the 16 keys: p0 .. p3 hold
// the query's probabilities of keys 4jc .. 4jc + 3 (jc = 0 .. 3), v[jc] those keys' V rows
// (column c: key 4jc + c, a vec4 over the four output columns).
fn pv_column(
  acc: vec4<f32>,
  alpha: f32,
  p0: vec4<f32>,
  p1: vec4<f32>,
  p2: vec4<f32>,
  p3: vec4<f32>,
  v: Rows16,
) -> vec4<f32> {
  let x0 = fma(v[0][3], vec4<f32>(p0.w), fma(v[0][2], vec4<f32>(p0.z),
    fma(v[0][1], vec4<f32>(p0.y), v[0][0] * p0.x)));
  let x1 = fma(v[1][3], vec4<f32>(p1.w), fma(v[1][2], vec4<f32>(p1.z),
    fma(v[1][1], vec4<f32>(p1.y), v[1][0] * p1.x)));
  let x2 = fma(v[2][3], vec4<f32>(p2.w), fma(v[2][2], vec4<f32>(p2.z),
    fma(v[2][1], vec4<f32>(p2.y), v[2][0] * p2.x)));
  let x3 = fma(v[3][3], vec4<f32>(p3.w), fma(v[3][2], vec4<f32>(p3.z),
    fma(v[3][1], vec4<f32>(p3.y), v[3][0] * p3.x)));
  return acc * alpha + ((x0 + x1) + (x2 + x3));
}

// Query r's probabilities of a score block's four keys (entry r of each key column).
fn prow(b: mat4x4<f32>, r: u32) -> vec4<f32> {
  return vec4<f32>(b[0][r], b[1][r], b[2][r], b[3][r]);
}

// Four output columns of query group qc (the matrix's columns: its four queries), rescaled and
// updated with the group's P V.
fn pv_group(
  acc: mat4x4<f32>,
  alpha: vec4<f32>,
  s: ptr<function, Tile>,
  qc: u32,
  v: Rows16,
) -> mat4x4<f32> {
  let i = 4u * qc;
  let b0 = (*s)[i];
  let b1 = (*s)[i + 1u];
  let b2 = (*s)[i + 2u];
  let b3 = (*s)[i + 3u];
  return mat4x4<f32>(
    pv_column(acc[0], alpha.x, prow(b0, 0u), prow(b1, 0u), prow(b2, 0u), prow(b3, 0u), v),
    pv_column(acc[1], alpha.y, prow(b0, 1u), prow(b1, 1u), prow(b2, 1u), prow(b3, 1u), v),
    pv_column(acc[2], alpha.z, prow(b0, 2u), prow(b1, 2u), prow(b2, 2u), prow(b3, 2u), v),
    pv_column(acc[3], alpha.w, prow(b0, 3u), prow(b1, 3u), prow(b2, 3u), prow(b3, 3u), v));
}

// V rows past the last key read as 0: their probabilities are 0, but a texture row past the
// operand's end may hold another attention's finite values or, after a copy, anything (0 * inf
// would be NaN).
fn keep4(m: mat4x4<f32>, k: u32) -> mat4x4<f32> {
  return mat4x4<f32>(select(vec4<f32>(0.0), m[0], k < p.sk),
    select(vec4<f32>(0.0), m[1], k + 1u < p.sk), select(vec4<f32>(0.0), m[2], k + 2u < p.sk),
    select(vec4<f32>(0.0), m[3], k + 3u < p.sk));
}

fn keep_keys(v: Rows16, j0: u32) -> Rows16 {
  return Rows16(keep4(v[0], j0), keep4(v[1], j0 + 4u), keep4(v[2], j0 + 8u), keep4(v[3], j0 + 12u));
}

// Score column (4 queries) of key j after the mask: LOWEST where not visible.
fn masked(x: vec4<f32>, q: vec4<u32>, j: u32, mb: u32) -> vec4<f32> {
  var y = x;
  if (SOFTCAP) {
    y = p.softcap * tanh(y / p.softcap);
  }
  var visible = vec4<bool>(j < p.sk);
  if (HAS_MASK) {
    let jj = min(j, p.sk - 1u) * p.m_st.w;
    let qq = min(q, vec4<u32>(p.sq - 1u)) * p.m_st.z + vec4<u32>(mb + jj);
    let mv = vec4<f32>(mask[qq.x], mask[qq.y], mask[qq.z], mask[qq.w]);
    if (MASK_BOOL) {
      visible = visible & (bitcast<vec4<u32>>(mv) != vec4<u32>(0u));
    } else {
      y += mv;
    }
  }
  if (CAUSAL) {
    visible = visible & (vec4<i32>(i32(j)) <= vec4<i32>(q) + vec4<i32>(p.causal_offset));
  }
  return select(vec4<f32>(LOWEST), y, visible);
}

fn mask_block(b: mat4x4<f32>, q: vec4<u32>, j: u32, mb: u32) -> mat4x4<f32> {
  return mat4x4<f32>(masked(b[0], q, j, mb), masked(b[1], q, j + 1u, mb),
    masked(b[2], q, j + 2u, mb), masked(b[3], q, j + 3u, mb));
}

fn max_block(b: mat4x4<f32>) -> vec4<f32> {
  return max(max(b[0], b[1]), max(b[2], b[3]));
}

fn prob(x: vec4<f32>, m: vec4<f32>) -> vec4<f32> {
  return select(exp(x - m), vec4<f32>(0.0), x <= vec4<f32>(LOWEST));
}

fn prob_block(b: mat4x4<f32>, m: vec4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(prob(b[0], m), prob(b[1], m), prob(b[2], m), prob(b[3], m));
}

fn sum_block(b: mat4x4<f32>) -> vec4<f32> {
  return (b[0] + b[1]) + (b[2] + b[3]);
}

// Masks the scores of query group qc (4 queries), updates its running max and sum, turns its
// scores into probabilities and returns the factor rescaling its earlier output.
fn softmax_group(
  s: ptr<function, Tile>,
  qc: u32,
  m: ptr<function, Quad>,
  l: ptr<function, Quad>,
  q: vec4<u32>,
  j0: u32,
  mb: u32,
  full: bool,
) -> vec4<f32> {
  let i = 4u * qc;
  (*s)[i] = (*s)[i] * p.scale;
  (*s)[i + 1u] = (*s)[i + 1u] * p.scale;
  (*s)[i + 2u] = (*s)[i + 2u] * p.scale;
  (*s)[i + 3u] = (*s)[i + 3u] * p.scale;
  if (!full) {
    (*s)[i] = mask_block((*s)[i], q, j0, mb);
    (*s)[i + 1u] = mask_block((*s)[i + 1u], q, j0 + 4u, mb);
    (*s)[i + 2u] = mask_block((*s)[i + 2u], q, j0 + 8u, mb);
    (*s)[i + 3u] = mask_block((*s)[i + 3u], q, j0 + 12u, mb);
  }
  let mx = max(max(max_block((*s)[i]), max_block((*s)[i + 1u])),
    max(max_block((*s)[i + 2u]), max_block((*s)[i + 3u])));
  let m_new = max((*m)[qc], mx);
  let alpha = exp((*m)[qc] - m_new);
  (*m)[qc] = m_new;
  (*s)[i] = prob_block((*s)[i], m_new);
  (*s)[i + 1u] = prob_block((*s)[i + 1u], m_new);
  (*s)[i + 2u] = prob_block((*s)[i + 2u], m_new);
  (*s)[i + 3u] = prob_block((*s)[i + 3u], m_new);
  (*l)[qc] = (*l)[qc] * alpha + ((sum_block((*s)[i]) + sum_block((*s)[i + 1u])) +
    (sum_block((*s)[i + 2u]) + sum_block((*s)[i + 3u])));
  return alpha;
}

//#include "lib/f16.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let tile = gid.x + gid.y * nwg.x * WG;
  if (tile >= p.tiles) {
    return;
  }
  let bh = tile / p.q_tiles;
  let q0 = 16u * (tile % p.q_tiles);
  let b = bh / p.heads;
  let h = bh % p.heads;
  let bhk = b * p.kv_heads + h / p.kv_group;
  let mb = b * p.m_st.x + h * p.m_st.y;
  let oq = head_origin(p.q_layout, p.qk_texels, p.heads, bh);
  let ok = head_origin(p.k_layout, p.qk_texels, p.kv_heads, bhk);
  let ov = head_origin(p.v_layout, p.v_texels, p.kv_heads, bhk);

  // Keys this tile needs: with a causal mask, none after its last row's horizon.
  var kend = p.sk;
  if (CAUSAL) {
    let last = i32(min(q0 + 16u, p.sq)) - 1;
    kend = u32(clamp(last + p.causal_offset + 1, 0, i32(p.sk)));
  }

  var m = Quad(vec4<f32>(LOWEST), vec4<f32>(LOWEST), vec4<f32>(LOWEST), vec4<f32>(LOWEST));
  var l = Quad(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  // acc[4c + qc]: output columns 4c .. 4c + 3 (a vec4 per column of the matrix) of queries
  // 4qc .. 4qc + 3 (the matrix's columns).
  var acc: array<mat4x4<f32>, 4u * DV4>;
  for (var c = 0u; c < 4u * DV4; c++) {
    acc[c] = mat4x4<f32>();
  }
  let qv = vec4<u32>(q0) + vec4<u32>(0u, 1u, 2u, 3u);
  for (var j0 = 0u; j0 < kend; j0 += 16u) {
    var s = Tile();
    for (var c = 0u; c < p.qk_texels; c++) {
      update(&s, rows16(tex_q, oq, q0, c), rows16(tex_k, ok, j0, c));
    }
    // A block every query of the tile sees whole (no mask, no key past the end or the causal
    // horizon) skips the masking.
    let keys_inside = j0 + 16u <= p.sk;
    var full = !HAS_MASK && !SOFTCAP && keys_inside;
    if (CAUSAL) {
      full = full && i32(j0 + 15u) <= i32(q0) + p.causal_offset;
    }
    let alpha = Quad(
      softmax_group(&s, 0u, &m, &l, qv, j0, mb, full),
      softmax_group(&s, 1u, &m, &l, qv + vec4<u32>(4u), j0, mb, full),
      softmax_group(&s, 2u, &m, &l, qv + vec4<u32>(8u), j0, mb, full),
      softmax_group(&s, 3u, &m, &l, qv + vec4<u32>(12u), j0, mb, full),
    );
    for (var c = 0u; c < p.v_texels; c++) {
      var v = rows16(tex_v, ov, j0, c);
      if (!keys_inside) {
        v = keep_keys(v, j0);
      }
      let o = 4u * c;
      acc[o] = pv_group(acc[o], alpha[0], &s, 0u, v);
      acc[o + 1u] = pv_group(acc[o + 1u], alpha[1], &s, 1u, v);
      acc[o + 2u] = pv_group(acc[o + 2u], alpha[2], &s, 2u, v);
      acc[o + 3u] = pv_group(acc[o + 3u], alpha[3], &s, 3u, v);
    }
  }

  let ob = b * p.o_st.x + h * p.o_st.y;
  let rows = min(16u, p.sq - q0);
  for (var r = 0u; r < rows; r++) {
    let qc = r / 4u;
    let sum = l[qc][r % 4u];
    for (var d = 0u; d < p.dv; d++) {
      var x = acc[4u * (d / 4u) + qc][r % 4u][d % 4u] / sum;
      if (EMPTY_ROWS_ZERO && sum == 0.0) {
        x = 0.0;
      }
      if (ROUND_F16) {
        x = round_f16(x);
      }
      out[ob + (q0 + r) * p.o_st.z + d * p.o_st.w] = x;
    }
  }
}
