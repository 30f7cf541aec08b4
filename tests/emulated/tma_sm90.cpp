// The emulated TMA (tma_sm90.h, tensor_map.cpp) under CuTe's own make_tma_copy / tma_partition,
// used exactly as csrc/kernels/sm90/flash_fwd_kernel.cuh uses them: a [B, S, heads, d] operand
// described by sm90::TmaOperand (launch.h) as an (S, d, heads, B) tensor, one 128-byte-swizzled
// sm90::SmemTile per CTA, the load completing on a ClusterTransactionBarrier, the tile stored
// back with a TMA store. Each CTA also copies its shared tile's raw bytes out, so the test can
// compare them with the swizzled placement it computes itself. Scenarios plant one misuse each.
#include "harness.h"

#include <cutlass/arch/barrier.h>

#include "sm90/flash_config.cuh"
#include "sm90/launch.h"

namespace tma_sm90 {

using namespace cute;
namespace sm90 = headmix::kernels::sm90;
using Element = cutlass::bfloat16_t;
constexpr int kRows = 64, kThreads = 128;

enum Scenario {
  kRoundTrip,             // load, copy the shared bytes out, store back
  kExpectTooFew,          // expect_tx 128 bytes short of the box
  kExpectTooMany,         // expect_tx 128 bytes more than the box
  kWaitBeforeIssue,       // the issuing thread waits on the barrier before it issues the load
  kNeverIssued,           // nobody issues the load
  kSyncInsteadOfWait,     // __syncthreads in place of the mbarrier wait before reading the tile
  kOverwriteBeforeWait,   // the tile is overwritten after the store is issued, before tma_store_wait
  kUncheckedEncode,       // the launcher's encodable() check skipped (the descriptor is encoded anyway)
  kNeverWaited,           // the load is issued, nobody waits on its barrier
  kStoreNeverWaited,      // the store is committed, never waited for
  kMisalignedTile,        // the shared tile 64 bytes past a 128-byte boundary
  kStoreUnfencedWrites,   // each thread rewrites a tile element before the store, with no fence.proxy.async
};

template <int kHeadDim>
struct Config {
  using SmemTile = sm90::SmemTile<Element, kRows, kHeadDim>;  // (BLK_M,d)
  using TmaLoad = sm90::TmaCopy<SM90_TMA_LOAD, const Element, SmemTile, kRows, kHeadDim>;
  using TmaStore = sm90::TmaCopy<SM90_TMA_STORE, Element, SmemTile, kRows, kHeadDim>;
  static constexpr uint32_t kBytes = kRows * kHeadDim * sizeof(Element);
  struct SharedStorage {
    cute::array_aligned<Element, cute::cosize_v<SmemTile>, 1024> tile;
    cutlass::arch::ClusterTransactionBarrier full;
  };
};

struct Params {
  int rows, heads, batch;
  uint8_t* image;   // CTAs x kBytes: each CTA's shared tile, raw
  Element* values;  // CTAs x kRows x d: the tile read through its SmemTile layout
  int scenario;
};

template <int kHeadDim>
struct Args {
  Params p;
  typename Config<kHeadDim>::TmaLoad tma_in;
  typename Config<kHeadDim>::TmaStore tma_out;
};

// Copies the tile out twice: its raw bytes, and its elements as the kernels' CuTe views (and
// wgmma's descriptors) address them, through SmemTile's own swizzled layout.
template <int kHeadDim, class SmemTensor>
void copy_tile_out(const Params& p, const uint8_t* tile, const SmemTensor& sX) {
  constexpr uint32_t kBytes = Config<kHeadDim>::kBytes;
  const int cta = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  for (uint32_t i = threadIdx.x * 16; i < kBytes; i += kThreads * 16) {
    std::memcpy(p.image + size_t(cta) * kBytes + i, tile + i, 16);
  }
  for (int i = threadIdx.x; i < kRows * kHeadDim; i += kThreads) {
    p.values[size_t(cta) * kRows * kHeadDim + i] = sX(i / kHeadDim, i % kHeadDim);
  }
}

template <int kHeadDim>
void round_trip_kernel(const Args<kHeadDim> args) {
  using Cfg = Config<kHeadDim>;
  const Params& p = args.p;
  auto& smem = *reinterpret_cast<typename Cfg::SharedStorage*>(emu::rt().smem);
  const int m_block = blockIdx.x, head = blockIdx.y, batch = blockIdx.z;
  if (threadIdx.x == 0) {
    prefetch_tma_descriptor(args.tma_in.get_tma_descriptor());
    prefetch_tma_descriptor(args.tma_out.get_tma_descriptor());
    smem.full.init(1);
  }
  __syncthreads();

  const auto tile = Shape<Int<kRows>, Int<kHeadDim>>{};
  Element* tile_ptr = smem.tile.data() + (p.scenario == kMisalignedTile ? 32 : 0);
  Tensor sX = make_tensor(make_smem_ptr(tile_ptr), typename Cfg::SmemTile{});                // (BLK_M,d)
  if (threadIdx.x == 0 && p.scenario != kNeverIssued) {
    Tensor mX = args.tma_in.get_tma_tensor(make_shape(p.rows, kHeadDim, p.heads, p.batch));  // (S,d,H,B)
    Tensor gX = local_tile(mX(_, _, head, batch), tile, make_coord(m_block, _0{}));          // (BLK_M,d)
    auto [tXgX, tXsX] = tma_partition(args.tma_in, _0{}, Layout<_1>{}, group_modes<0, 2>(sX), group_modes<0, 2>(gX));
    if (p.scenario == kWaitBeforeIssue) smem.full.wait(0);
    const int slack = p.scenario == kExpectTooFew ? -128 : p.scenario == kExpectTooMany ? 128 : 0;
    smem.full.arrive_and_expect_tx(Cfg::kBytes + slack);
    copy(args.tma_in.with(reinterpret_cast<uint64_t&>(smem.full), 0), tXgX, tXsX);
  }
  if (p.scenario == kNeverWaited) return;
  if (p.scenario == kSyncInsteadOfWait) {
    __syncthreads();
  } else {
    smem.full.wait(0);
  }
  copy_tile_out<kHeadDim>(p, reinterpret_cast<const uint8_t*>(smem.tile.data()), sX);
  if (p.scenario == kSyncInsteadOfWait) smem.full.wait(0);
  __syncthreads();  // every thread has copied the tile out before it may change
  if (p.scenario == kStoreUnfencedWrites) {
    Element* mine = smem.tile.data() + threadIdx.x;  // a plain (generic-proxy) store, seen by the race check
    emu::emulated_write(mine, sizeof(Element), "tile store");
    *mine = Element(1.f);
    __syncthreads();  // orders the stores before the TMA store, but only a proxy fence makes them visible to it
  }

  if (threadIdx.x == 0) {
    Tensor mO = args.tma_out.get_tma_tensor(make_shape(p.rows, kHeadDim, p.heads, p.batch));  // (S,d,H,B)
    Tensor gO = local_tile(mO(_, _, head, batch), tile, make_coord(m_block, _0{}));            // (BLK_M,d)
    auto [tOgO, tOsO] = tma_partition(args.tma_out, _0{}, Layout<_1>{}, group_modes<0, 2>(sX), group_modes<0, 2>(gO));
    copy(args.tma_out, tOsO, tOgO);
    tma_store_arrive();
    if (p.scenario == kOverwriteBeforeWait) std::memset(smem.tile.data(), 0, Cfg::kBytes);
    if (p.scenario != kStoreNeverWaited) tma_store_wait<0>();
  }
}

// As the sm90 launchers do: describe both operands, refuse what TMA cannot describe, build the
// descriptors with make_tma_copy, launch one CTA per (64-row tile, head, batch).
template <int kHeadDim>
cudaError_t launch(const at::Tensor& x, const at::Tensor& out, Params p) {
  using Cfg = Config<kHeadDim>;
  const sm90::TmaOperand in(x.data_ptr(), x.size(1), x.size(2), x.size(0), x.stride(1), x.stride(2), x.stride(0),
                            kHeadDim);
  const sm90::TmaOperand o(out.data_ptr(), out.size(1), out.size(2), out.size(0), out.stride(1), out.stride(2),
                           out.stride(0), kHeadDim);
  if (p.scenario != kUncheckedEncode && !sm90::all_encodable<kHeadDim, Element>(in, o)) return cudaErrorInvalidValue;
  const auto tile = Shape<Int<kRows>, Int<kHeadDim>>{};
  const typename Cfg::SmemTile smem_tile{};
  const Args<kHeadDim> args{
      p, make_tma_copy(SM90_TMA_LOAD{}, in.tensor<const Element, kHeadDim>(), smem_tile, tile, _1{}),
      make_tma_copy(SM90_TMA_STORE{}, o.tensor<Element, kHeadDim>(), smem_tile, tile, _1{})};
  const dim3 grid(unsigned((p.rows + kRows - 1) / kRows), unsigned(p.heads), unsigned(p.batch));
  emu::launch(grid, dim3(kThreads), sizeof(typename Cfg::SharedStorage), [&] { round_trip_kernel<kHeadDim>(args); });
  return cudaSuccess;
}

}  // namespace tma_sm90

// Runs scenario `scenario` (tma_sm90::Scenario) over x [B, S, H, d] (bf16, d 64 or 128, last dim
// contiguous), storing into out (same shape, any strides); returns each CTA's shared tile as raw
// bytes [CTAs, 64 * d * 2] and through its SmemTile layout [CTAs, 64, d], in grid order (x
// fastest). Errors of the launcher or the emulator reach Python.
std::vector<at::Tensor> tma_sm90_scenario(int64_t scenario, const at::Tensor& x, const at::Tensor& out) {
  using namespace tma_sm90;
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 && x.dim() == 4 && x.stride(3) == 1 && out.sizes() == x.sizes() &&
                  out.scalar_type() == x.scalar_type() && out.stride(3) == 1,
              "x, out: [B, S, H, d] bf16 with d contiguous");
  const int64_t d = x.size(3);
  TORCH_CHECK(d == 64 || d == 128, "d must be 64 or 128, got ", d);
  const int64_t ctas = (x.size(1) + kRows - 1) / kRows * x.size(2) * x.size(0);
  auto image = at::full({ctas, kRows * d * 2}, 0xff, x.options().dtype(at::kByte));
  auto values = at::full({ctas, kRows, d}, std::numeric_limits<double>::quiet_NaN(), x.options());
  harness::use_buffers({{"x", x, false}, {"out", out, true}, {"image", image, true}, {"values", values, true}});
  const Params p{int(x.size(1)), int(x.size(2)), int(x.size(0)), image.data_ptr<uint8_t>(),
                 reinterpret_cast<Element*>(values.data_ptr()), int(scenario)};
  harness::check(d == 64 ? launch<64>(x, out, p) : launch<128>(x, out, p), "tma round trip");
  return {image, values};
}

// Encodes a valid 2-D bf16 map (128 x 64 elements, rows 256 bytes apart, 64 x 64 boxes, 128-byte
// swizzle) with one documented limit broken per `violation` (0: none); returns the driver's
// CUresult and the stand-in's reason.
std::tuple<int64_t, std::string> tma_encode_violation(int64_t violation) {
  alignas(64) static unsigned char storage[2 * sizeof(CUtensorMap)];
  alignas(256) static unsigned char tensor[1 << 16];
  CUtensorMap* map = reinterpret_cast<CUtensorMap*>(storage);
  CUtensorMapDataType type = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  cuuint32_t rank = 2;
  unsigned char* address = tensor;
  cuuint64_t dims[5] = {64, 128, 1, 1, 1}, strides[4] = {256, 0, 0, 0};
  cuuint32_t box[5] = {64, 64, 1, 1, 1}, element_strides[5] = {1, 1, 1, 1, 1};
  CUtensorMapInterleave interleave = CU_TENSOR_MAP_INTERLEAVE_NONE;
  CUtensorMapSwizzle swizzle = CU_TENSOR_MAP_SWIZZLE_128B;
  CUtensorMapFloatOOBfill oob = CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE;
  switch (violation) {
    case 0: break;
    case 1: map = reinterpret_cast<CUtensorMap*>(storage + 32); break;
    case 2: rank = 0; break;
    case 3: rank = 6; break;
    case 4: address += 8; break;
    case 5: dims[1] = 0; break;
    case 6: dims[1] = (cuuint64_t(1) << 32) + 1; break;
    case 7: strides[0] = 200; break;
    case 8: strides[0] = cuuint64_t(1) << 40; break;
    case 9: box[1] = 257; break;
    case 10: box[0] = 128; break;  // 256 bytes under the 128-byte swizzle
    case 11: box[0] = 4, swizzle = CU_TENSOR_MAP_SWIZZLE_NONE; break;  // 8 bytes: not a multiple of 16
    case 12: element_strides[1] = 9; break;
    case 13: element_strides[1] = 0; break;
    case 14: rank = 3, interleave = CU_TENSOR_MAP_INTERLEAVE_32B, swizzle = CU_TENSOR_MAP_SWIZZLE_32B,
             address += 16, strides[1] = 256 * 128; break;
    case 15: rank = 3, interleave = CU_TENSOR_MAP_INTERLEAVE_32B, strides[1] = 256 * 128; break;
    case 16: interleave = CU_TENSOR_MAP_INTERLEAVE_16B; break;  // rank 2
    case 17:  // 32 x 4 bytes fits the swizzle span
      type = CU_TENSOR_MAP_DATA_TYPE_INT32, box[0] = 32, oob = CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA;
      break;
    default: TORCH_CHECK(false, "no violation ", violation);
  }
  const CUresult result = cuTensorMapEncodeTiled(map, type, rank, address, dims, strides, box, element_strides,
                                                 interleave, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_128B, oob);
  return {int64_t(result), emu::last_encode_error()};
}
