// The emulated Hopper synchronisation (sync_sm90.h) under code nobody here wrote first:
// CUTLASS's own PipelineAsync moving tiles from a producer warp to two consumer warps through
// a 2-stage ring of mbarriers, plus tiny kernels that each plant one protocol bug. The tiles go
// through shared memory with instrumented accesses, so the race check sees what the barriers
// order and what they do not.
#include "harness.h"

#include <cutlass/arch/barrier.h>
#include <cutlass/pipeline/sm90_pipeline.hpp>

namespace sync_sm90 {

constexpr int kStages = 2, kTile = 64, kConsumers = 64;

enum Scenario {
  kPipeline,            // producer warp 0, consumer warps 1-2: out[c] = sum_t (t + 1) * in[t][c]
  kWrongParity,         // the consumers wait for the wrong parity of the full barrier
  kNoRelease,           // the consumers never release a stage
  kInitTwice,           // an mbarrier initialised twice
  kArriveBeforeInit,    // an arrive on an mbarrier nobody initialised
  kTooManyBytes,        // complete_tx of more bytes than the phase expects
  kNamedCountMismatch,  // warps at one named barrier with different thread counts
  kNamedMissingWarp,    // a named barrier for 96 threads that only 64 reach
  kNamedBarrier,        // warps 1-2 meet at a named barrier of 64 threads; warp 0 does not take part
  kReadBeforeWait,      // the pipeline, with the consumers reading a stage before waiting for it
  kReleaseBeforeRead,   // the pipeline, with the consumers releasing a stage before reading it
  kNamedBarrierShared,  // thread 32 writes shared memory, warps 1-2 meet at a named barrier, all read
  kNamedBarrierBypass,  // the same with the write by thread 0, which the named barrier does not order
  kProxyFenced,         // warps 1-2 store a tile, fence.proxy.async, named barrier, an async-proxy read
  kProxyUnfenced,       // the same without the fence
  kProxyFenceTooEarly,  // the same with the fence before the stores
};

struct Params {
  const float* in;  // tiles x kTile floats
  float* out;       // kTile floats
  int tiles;
  int scenario;
};

using Pipeline = cutlass::PipelineAsync<kStages>;

struct SharedStorage {
  typename Pipeline::SharedStorage pipeline;
  float stage[kStages][kTile];
  alignas(8) uint64_t spare;  // an mbarrier for the planted misuses
};

// Shared-memory accesses the emulator checks (plain C++ ones it cannot see).
void store(float& to, float value) {
  emu::emulated_write(&to, sizeof(float), "stage store");
  to = value;
}
float load(const float& from) {
  emu::emulated_read(&from, sizeof(float), "stage load");
  return from;
}

void pipeline_kernel(const Params p) {
  auto& smem = *reinterpret_cast<SharedStorage*>(emu::rt().smem);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  typename Pipeline::Params params;
  params.role = warp == 0 ? Pipeline::ThreadCategory::Producer : Pipeline::ThreadCategory::Consumer;
  params.producer_arv_count = 1;
  params.consumer_arv_count = kConsumers;
  Pipeline pipeline(smem.pipeline, params, cute::true_type{});
  __syncthreads();  // the barriers are initialised before anyone uses them

  if (warp == 0) {
    auto state = cutlass::make_producer_start_state<Pipeline>();
    for (int t = 0; t < p.tiles; ++t, ++state) {
      pipeline.producer_acquire(state);
      for (int c = lane; c < kTile; c += 32) store(smem.stage[state.index()][c], p.in[t * kTile + c]);
      __syncwarp();  // orders every lane's stores before lane 0's commit
      if (lane == 0) pipeline.producer_commit(state);
    }
    return;
  }
  const int c = threadIdx.x - 32;
  typename Pipeline::PipelineState state;
  float sum = 0.f;
  for (int t = 0; t < p.tiles; ++t, ++state) {
    auto wait_state = state;
    if (p.scenario == kWrongParity) wait_state = Pipeline::PipelineState(state.index(), state.phase() ^ 1, state.count());
    float value = 0.f;
    if (p.scenario == kReadBeforeWait) value = load(smem.stage[state.index()][c]);
    pipeline.consumer_wait(wait_state);
    if (p.scenario == kReleaseBeforeRead) pipeline.consumer_release(state);
    if (p.scenario != kReadBeforeWait) value = load(smem.stage[state.index()][c]);
    sum += float(t + 1) * value;
    if (p.scenario != kNoRelease && p.scenario != kReleaseBeforeRead) pipeline.consumer_release(state);
  }
  p.out[c] = sum;
}

void misuse_kernel(const Params p) {
  auto& smem = *reinterpret_cast<SharedStorage*>(emu::rt().smem);
  using Barrier = cutlass::arch::ClusterTransactionBarrier;
  const int warp = threadIdx.x / 32;
  switch (p.scenario) {
    case kInitTwice:
      if (threadIdx.x == 0) {
        Barrier::init(&smem.spare, 1);
        Barrier::init(&smem.spare, 1);
      }
      break;
    case kArriveBeforeInit:
      if (threadIdx.x == 0) Barrier::arrive(&smem.spare);
      break;
    case kTooManyBytes:
      if (threadIdx.x == 0) {
        Barrier::init(&smem.spare, 1);
        Barrier::arrive_and_expect_tx(&smem.spare, 16);
        Barrier::complete_transaction(&smem.spare, 0, 32);
      }
      break;
    case kNamedCountMismatch:
      cutlass::arch::NamedBarrier::sync(warp == 0 ? 64 : 96, 1);
      break;
    case kNamedMissingWarp:
      if (warp > 0) cutlass::arch::NamedBarrier::sync(96, 1);
      break;
    case kNamedBarrier:
      if (warp > 0) {
        if (threadIdx.x == 32) p.out[0] = 1.f;
        cutlass::arch::NamedBarrier::sync(kConsumers, 1);
        p.out[threadIdx.x - 32] = p.out[0];  // every consumer sees thread 32's store
      }
      break;
    case kNamedBarrierShared:
    case kNamedBarrierBypass: {
      const int writer = p.scenario == kNamedBarrierShared ? 32 : 0;
      if (threadIdx.x == writer) store(smem.stage[0][0], 1.f);
      if (warp > 0) {
        cutlass::arch::NamedBarrier::sync(kConsumers, 1);
        p.out[threadIdx.x - 32] = load(smem.stage[0][0]);
      }
      break;
    }
    case kProxyFenced:
    case kProxyUnfenced:
    case kProxyFenceTooEarly:
      if (warp > 0) {
        const int c = threadIdx.x - 32;
        if (p.scenario == kProxyFenceTooEarly) cutlass::arch::fence_view_async_shared();
        store(smem.stage[0][c], p.in[c]);
        if (p.scenario == kProxyFenced) cutlass::arch::fence_view_async_shared();
        cutlass::arch::NamedBarrier::sync(kConsumers, 1);
        if (c == 0) {  // stands in for a TMA store of the tile, which reads through the async proxy
          emu::async_proxy_read(smem.stage[0], sizeof(smem.stage[0]), "TMA store source");
          for (int i = 0; i < kTile; ++i) p.out[i] = smem.stage[0][i];
        }
      }
      break;
  }
}

}  // namespace sync_sm90

// Runs scenario `scenario` (sync_sm90::Scenario) with 96 threads over `in` (tiles x 64 floats)
// and returns the 64 outputs; the emulator's error, if it sees one, reaches Python.
at::Tensor sync_sm90_scenario(int64_t scenario, const at::Tensor& in) {
  using namespace sync_sm90;
  TORCH_CHECK(in.scalar_type() == at::kFloat && in.dim() == 2 && in.size(1) == kTile && in.is_contiguous(),
              "in: [tiles, 64] contiguous floats");
  auto out = at::zeros({kTile}, in.options());
  harness::use_buffers({{"in", in, false}, {"out", out, true}});
  const Params p{in.data_ptr<float>(), out.data_ptr<float>(), int(in.size(0)), int(scenario)};
  const bool pipeline = scenario == kPipeline || scenario == kWrongParity || scenario == kNoRelease ||
                        scenario == kReadBeforeWait || scenario == kReleaseBeforeRead;
  emu::launch(dim3(1), dim3(96), sizeof(SharedStorage), [&] { pipeline ? pipeline_kernel(p) : misuse_kernel(p); });
  return out;
}
