// AMU-Tuning: per-step bookkeeping on the GPU, so a whole epoch is encoded without the CPU.
//
// `begin` (one invocation) turns the step counter into the step state every other AMU kernel
// reads: which slice of the order buffer is this step's batch, how many rows it has (the last
// batch of an epoch may be partial), and this step's learning-rate-derived AdamW scalars, copied
// from a table the host precomputed once (closed-form cosine schedule in float64, rounded to
// float32). It then advances the counter.
//
// `finish` (one invocation) reduces the batch's per-row losses in row order into the epoch's
// per-iteration record (loss, loss_merge, loss_aux, correct), which the host reads once per epoch.
//
// Both are single invocations on purpose: their work is a handful of scalars (finish: a loop over
// at most the batch size), and running them on one invocation keeps the order fixed.

//#include "lib/step_state.wgsl"

// One uniform struct for both entry points; each ignores the fields of the other.
struct Params {
  // begin: how the step counter maps to an epoch's batch.
  rowsPerEpoch: u32,
  batchSize: u32,
  itersPerEpoch: u32,
  // finish: the weight of loss_merge in the iteration's loss.
  lambda: f32,
}

// schedule[t] = (lr, decay, stepSize, bc2Sqrt) of global step t.
@group(0) @binding(0) var<storage, read_write> counter: array<u32>;
@group(0) @binding(1) var<storage, read> schedule: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> state: StepState;
@group(0) @binding(3) var<uniform> sched: Params;

@compute @workgroup_size(1)
fn begin() {
  let t = counter[0];
  let epoch = t / sched.itersPerEpoch;
  let iter = t % sched.itersPerEpoch;
  let first = iter * sched.batchSize;
  let s = schedule[t];
  state.step = t;
  state.iter = iter;
  state.rowStart = epoch * sched.rowsPerEpoch + first;
  state.rowCount = min(sched.batchSize, sched.rowsPerEpoch - first);
  state.lr = s.x;
  state.decay = s.y;
  state.stepSize = s.z;
  state.bc2Sqrt = s.w;
  counter[0] = t + 1u;
}

@group(0) @binding(0) var<storage, read> finState: StepState;
@group(0) @binding(1) var<storage, read> rowStats: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> iterStats: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> fin: Params;

@compute @workgroup_size(1)
fn finish() {
  let count = finState.rowCount;
  var merge = 0.0;
  var aux = 0.0;
  var correct = 0.0;
  for (var b = 0u; b < count; b++) {
    let r = rowStats[b];
    merge += r.x;
    aux += r.y;
    correct += r.z;
  }
  merge = merge / f32(count);
  aux = aux / f32(count);
  let loss = fin.lambda * merge + (1.0 - fin.lambda) * aux;
  // The record's layout on the host: ITER_RECORD_WORDS, unpackIterationRecords (amu_step_shape.ts).
  iterStats[finState.iter] = vec4<f32>(loss, merge, aux, correct);
}
