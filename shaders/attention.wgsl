// Fused scaled-dot-product attention:
//   out[b, h, i, :] = sum_j softmax_j(scale * Q[b, h, i, :] . K[b, h, j, :] + mask[b, h, i, j])
//                     * V[b, h, j, :]
// computed without the [Sq, Sk] score matrix in memory: keys are streamed 16 at a time, with a
// running maximum m and sum l of exp(score - m) per query; when m grows, l and the output
// accumulator are rescaled by exp(m_old - m_new) ("online softmax", as in flash attention).
//
// Q, K and V are read from textures that attention_pack.wgsl fills (why textures: on llvmpipe a
// textureLoad is a branch-free gather, cheaper per value than a storage-buffer load, a loop over
// the SIMD lanes, and loads are what these products cost there; halves halve the loads again).
// `main`: one invocation per 16 query rows of one (batch, head). Per block of 16 keys it
// computes the 16 x 16 scores as an outer-product register tile (per column d: four texel loads
// of Q and four of K, two each with halves, for 256 multiply-adds, like the matmul kernel's
// 16 x 16 blocks), turns them into probabilities in place, and adds P V to its 16 output rows,
// which live in a function-scope array (per column d: four texel loads of V, or two, for 256
// multiply-adds). The output is written once at the end, through strides (so the head merge
// transpose is free too).
// TEXEL (f32 or u32) is a placeholder: the texture element type, which override constants cannot
// choose; HALVES must agree with it.
// The register tiles are written out with constant indices rather than looped over: loops over
// register arrays are not reliably unrolled, and an array that is not unrolled lives in memory.

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
  // Texture rows per (batch, head) and heads per layer, of Q's texture and of K's and V's.
  q_tex_rows: u32,
  q_heads_per_layer: u32,
  kv_tex_rows: u32,
  kv_heads_per_layer: u32,
  // Heads of K and V, and query heads per K/V head (grouped-query attention; 1 otherwise).
  kv_heads: u32,
  kv_group: u32,
  // With SOFTCAP: scores become softcap * tanh(score / softcap) before the mask is applied.
  softcap: f32,
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
// Operands stored as halves, eight rows per texel (the model's "f16" precision); f32 arithmetic.
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

// Output columns, rounded up to a multiple of 4: sizes the accumulator array.
const DV: u32 = {{DV}}u;
// Start of the running maximum, and the score of a key that is not visible: finite, so that
// exp(m_old - m_new) is never exp(inf - inf).
const LOWEST: f32 = -3.4028234e38;

// 16 x 16 scores: block qc * 4 + jc covers queries 4qc .. 4qc + 3 (the rows of each column) and
// keys 4jc .. 4jc + 3 (the columns).
alias Tile = array<mat4x4<f32>, 16>;
alias Quad = array<vec4<f32>, 4>;

fn texel(t: texture_2d_array<{{TEXEL}}>, tex_rows: u32, per_layer: u32, bh: u32, r: u32, d: u32) -> vec4<u32> {
  let y = (bh % per_layer) * tex_rows + r;
  return bitcast<vec4<u32>>(textureLoad(t, vec2<u32>(d, y), bh / per_layer, 0));
}

// Column d of the 16 rows 16 r16 .. 16 r16 + 15, four rows per vec4.
fn quad(t: texture_2d_array<{{TEXEL}}>, tex_rows: u32, per_layer: u32, bh: u32, r16: u32, d: u32) -> Quad {
  if (HALVES) {
    let a = texel(t, tex_rows, per_layer, bh, 2u * r16, d);
    let b = texel(t, tex_rows, per_layer, bh, 2u * r16 + 1u, d);
    return Quad(vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y)),
      vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w)),
      vec4<f32>(unpack2x16float(b.x), unpack2x16float(b.y)),
      vec4<f32>(unpack2x16float(b.z), unpack2x16float(b.w)));
  }
  return Quad(bitcast<vec4<f32>>(texel(t, tex_rows, per_layer, bh, 4u * r16, d)),
    bitcast<vec4<f32>>(texel(t, tex_rows, per_layer, bh, 4u * r16 + 1u, d)),
    bitcast<vec4<f32>>(texel(t, tex_rows, per_layer, bh, 4u * r16 + 2u, d)),
    bitcast<vec4<f32>>(texel(t, tex_rows, per_layer, bh, 4u * r16 + 3u, d)));
}

fn outer(acc: mat4x4<f32>, a: vec4<f32>, b: vec4<f32>) -> mat4x4<f32> {
  return mat4x4<f32>(fma(a, vec4<f32>(b.x), acc[0]), fma(a, vec4<f32>(b.y), acc[1]),
    fma(a, vec4<f32>(b.z), acc[2]), fma(a, vec4<f32>(b.w), acc[3]));
}

fn update(s: ptr<function, Tile>, a: Quad, b: Quad) {
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
  let q16 = q0 / 16u;
  let mb = b * p.m_st.x + h * p.m_st.y;

  // Keys this tile needs: with a causal mask, none after its last row's horizon.
  var kend = p.sk;
  if (CAUSAL) {
    let last = i32(min(q0 + 16u, p.sq)) - 1;
    kend = u32(clamp(last + p.causal_offset + 1, 0, i32(p.sk)));
  }

  var m = Quad(vec4<f32>(LOWEST), vec4<f32>(LOWEST), vec4<f32>(LOWEST), vec4<f32>(LOWEST));
  var l = Quad(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  // acc[4d + qc]: output column d of queries 4qc .. 4qc + 3.
  var acc: array<vec4<f32>, 4u * DV>;
  for (var d = 0u; d < 4u * DV; d++) {
    acc[d] = vec4<f32>(0.0);
  }
  let qv = vec4<u32>(q0) + vec4<u32>(0u, 1u, 2u, 3u);
  for (var j0 = 0u; j0 < kend; j0 += 16u) {
    let j16 = j0 / 16u;
    var s = Tile();
    for (var d = 0u; d < p.dqk; d++) {
      update(&s, quad(tex_q, p.q_tex_rows, p.q_heads_per_layer, bh, q16, d),
        quad(tex_k, p.kv_tex_rows, p.kv_heads_per_layer, bhk, j16, d));
    }
    // A block every query of the tile sees whole (no mask, no key past the end or the causal
    // horizon) skips the masking.
    var full = !HAS_MASK && !SOFTCAP && j0 + 16u <= p.sk;
    if (CAUSAL) {
      full = full && i32(j0 + 15u) <= i32(q0) + p.causal_offset;
    }
    let alpha = Quad(
      softmax_group(&s, 0u, &m, &l, qv, j0, mb, full),
      softmax_group(&s, 1u, &m, &l, qv + vec4<u32>(4u), j0, mb, full),
      softmax_group(&s, 2u, &m, &l, qv + vec4<u32>(8u), j0, mb, full),
      softmax_group(&s, 3u, &m, &l, qv + vec4<u32>(12u), j0, mb, full),
    );
    for (var d = 0u; d < p.dv; d++) {
      let vq = quad(tex_v, p.kv_tex_rows, p.kv_heads_per_layer, bhk, j16, d);
      let v0 = vq[0];
      let v1 = vq[1];
      let v2 = vq[2];
      let v3 = vq[3];
      let o = 4u * d;
      acc[o] = acc[o] * alpha[0] + ((s[0] * v0 + s[1] * v1) + (s[2] * v2 + s[3] * v3));
      acc[o + 1u] = acc[o + 1u] * alpha[1] + ((s[4] * v0 + s[5] * v1) + (s[6] * v2 + s[7] * v3));
      acc[o + 2u] = acc[o + 2u] * alpha[2] +
        ((s[8] * v0 + s[9] * v1) + (s[10] * v2 + s[11] * v3));
      acc[o + 3u] = acc[o + 3u] * alpha[3] +
        ((s[12] * v0 + s[13] * v1) + (s[14] * v2 + s[15] * v3));
    }
  }

  let ob = b * p.o_st.x + h * p.o_st.y;
  let rows = min(16u, p.sq - q0);
  for (var d = 0u; d < p.dv; d++) {
    for (var r = 0u; r < rows; r++) {
      let qc = r / 4u;
      let sum = l[qc][r % 4u];
      var x = acc[4u * d + qc][r % 4u] / sum;
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
