// The emulated wgmma, stmatrix and setmaxnreg (wgmma_sm90.h, setmaxnreg.h) under CuTe's own GMMA
// and stmatrix atoms, built exactly as the sm90 kernels build them (sm90/flash_config.cuh):
// C = A B^T over shared-memory tiles of every swizzle the descriptors encode, then the same
// accumulator stored through stmatrix; plus tiny kernels that each plant one misuse.
#include "harness.h"

#include <cute/tensor.hpp>
#include <cutlass/arch/reg_reconfig.h>

#include "sm90/flash_config.cuh"

namespace wgmma_sm90 {

using namespace cute;
using namespace headmix::kernels::sm90;

enum SwizzleAtom { kSw128, kSw64, kSw32, kNoSwizzle };

enum Scenario {
  kCorrect,
  kReadBeforeWait,       // the accumulator copied out before wgmma.wait_group
  kOverwriteStage,       // a B element rewritten between the wgmma's issue and its retire
  kWarpSkipsWgmma,       // warp 3 of the warpgroup skips the wgmma and goes to the wait
  kWarpExits,            // warp 3 of the warpgroup exits instead of issuing the wgmma
  kUnemulatedAtom,       // CuTe's own GMMA fma called directly
};

// (kRows, kCols) tiles with kCols contiguous from one K-major swizzle atom; the 128-byte one is
// the kernels' own SmemTile / SmemTileT.
template <class Element, int kSwizzle>
using KAtom = std::conditional_t<
    kSwizzle == kSw128, GMMA::Layout_K_SW128_Atom<Element>,
    std::conditional_t<kSwizzle == kSw64, GMMA::Layout_K_SW64_Atom<Element>,
                       std::conditional_t<kSwizzle == kSw32, GMMA::Layout_K_SW32_Atom<Element>,
                                          GMMA::Layout_K_INTER_Atom<Element>>>>;
template <class Element, int kSwizzle, int kRows, int kCols>
struct Tiles {
  using Tile = decltype(tile_to_shape(KAtom<Element, kSwizzle>{}, Shape<Int<kRows>, Int<kCols>>{}));
  using TileT = decltype(composition(Tile{}, make_layout(Shape<Int<kCols>, Int<kRows>>{}, Stride<Int<kRows>, _1>{})));
};
template <class Element, int kRows, int kCols>
struct Tiles<Element, kSw128, kRows, kCols> {
  using Tile = SmemTile<Element, kRows, kCols>;
  using TileT = SmemTileT<Element, kRows, kCols>;
};
template <class Element, int kSwizzle, int kRows, int kCols>
using Tile = typename Tiles<Element, kSwizzle, kRows, kCols>::Tile;
// The same buffer seen transposed, (kCols, kRows): an MN-major operand.
template <class Element, int kSwizzle, int kRows, int kCols>
using TileT = typename Tiles<Element, kSwizzle, kRows, kCols>::TileT;

// C (M x N) = A (M x K) B^T (B: N x K) by kWgM x kWgN warpgroups of 64 x kN atoms.
template <class Element_, int kWgM, int kWgN, int kN_, int kK_, bool kRS, GMMA::Major kMajorA, GMMA::Major kMajorB,
          int kSwizzle>
struct Gemm {
  using Element = Element_;
  static constexpr int kM = 64 * kWgM, kN = kN_ * kWgN, kK = kK_, kThreads = 128 * kWgM * kWgN;
  using SmemA = std::conditional_t<kMajorA == GMMA::Major::K, Tile<Element, kSwizzle, kM, kK>,
                                   TileT<Element, kSwizzle, kK, kM>>;  // (M,K)
  using SmemB = std::conditional_t<kMajorB == GMMA::Major::K, Tile<Element, kSwizzle, kN, kK>,
                                   TileT<Element, kSwizzle, kK, kN>>;  // (N,K)
  using SmemC = Tile<Element, kSwizzle, kM, kN>;                       // (M,N)
  // One warpgroup column: the kernels' TiledMmaSS / TiledMmaRS. Warpgroups side by side in N:
  // as the backward's TiledMmaDq builds it.
  using Mma = std::conditional_t<
      kWgN == 1,
      std::conditional_t<kRS, TiledMmaRS<Element, kWgM, kN, kK, kMajorB>,
                         TiledMmaSS<Element, kWgM, kN, kK, kMajorB, kMajorA>>,
      decltype(make_tiled_mma(
          GMMA::ss_op_selector<Element, Element, float, Shape<_64, Int<kN_>, Int<kK>>, kMajorA, kMajorB>(),
          Layout<Shape<Int<kWgM>, Int<kWgN>, _1>>{}))>;
  struct SharedStorage {
    cute::array_aligned<Element, cute::cosize_v<SmemA>, 1024> a;
    cute::array_aligned<Element, cute::cosize_v<SmemB>, 1024> b;
    cute::array_aligned<Element, cute::cosize_v<SmemC>, 1024> c;
  };
};

struct Params {
  const void* a;  // M x K, row-major
  const void* b;  // N x K, row-major
  float* c;       // M x N, row-major: the accumulator
  void* c16;      // M x N: the accumulator rounded to the element type, stored through stmatrix
  int scenario;
};

template <class G>
void gemm_kernel(const Params p) {
  using Element = typename G::Element;
  auto& smem = *reinterpret_cast<typename G::SharedStorage*>(emu::rt().smem);
  const int tid = threadIdx.x;
  using MK = Shape<Int<G::kM>, Int<G::kK>>;
  using NK = Shape<Int<G::kN>, Int<G::kK>>;
  using MN = Shape<Int<G::kM>, Int<G::kN>>;
  Tensor gA = make_tensor(make_gmem_ptr(static_cast<const Element*>(p.a)), make_layout(MK{}, LayoutRight{}));  // (M,K)
  Tensor gB = make_tensor(make_gmem_ptr(static_cast<const Element*>(p.b)), make_layout(NK{}, LayoutRight{}));  // (N,K)
  Tensor gC = make_tensor(make_gmem_ptr(p.c), make_layout(MN{}, LayoutRight{}));                             // (M,N)
  Tensor gC16 = make_tensor(make_gmem_ptr(static_cast<Element*>(p.c16)), make_layout(MN{}, LayoutRight{}));  // (M,N)
  Tensor sA = make_tensor(make_smem_ptr(smem.a.data()), typename G::SmemA{});                               // (M,K)
  Tensor sB = make_tensor(make_smem_ptr(smem.b.data()), typename G::SmemB{});                               // (N,K)
  Tensor sC = make_tensor(make_smem_ptr(smem.c.data()), typename G::SmemC{});                               // (M,N)
  for (int i = tid; i < size(sA); i += G::kThreads) sA(i) = gA(i);
  for (int i = tid; i < size(sB); i += G::kThreads) sB(i) = gB(i);
  __syncthreads();

  typename G::Mma mma;
  auto thr = mma.get_thread_slice(tid);
  Tensor tCrA = thr.partition_fragment_A(sA);                                                              // (MMA,MMA_M,MMA_K)
  Tensor tCrB = thr.partition_fragment_B(sB);                                                              // (MMA,MMA_N,MMA_K)
  Tensor acc = partition_fragment_C(mma, MN{});                                                            // (MMA,MMA_M,MMA_N)
  Tensor tCgC = thr.partition_C(gC);                                                                       // (MMA,MMA_M,MMA_N)
  if constexpr (!is_same_v<typename decltype(tCrA)::value_type, GmmaDescriptor>) copy(thr.partition_A(gA), tCrA);

  if (p.scenario == kUnemulatedAtom) {
    float d[4];
    SM90::GMMA::MMA_64x8x16_F32BF16BF16_SS<GMMA::Major::K, GMMA::Major::K>::fma(0, 0, d[0], d[1], d[2], d[3]);
  }
  if (p.scenario == kWarpExits && tid / 32 == 3) return;
  if (p.scenario != kWarpSkipsWgmma || tid / 32 != 3) wgmma_async<true>(mma, tCrA, tCrB, acc);
  if (p.scenario == kOverwriteStage && tid == 0) reinterpret_cast<uint16_t*>(smem.b.data())[5] ^= 1;
  if (p.scenario == kReadBeforeWait) copy(acc, tCgC);
  wgmma_wait<0>(acc);
  if (p.scenario != kReadBeforeWait) copy(acc, tCgC);

  // The kernels' epilogue: the accumulator rounded to 16 bits, stored through stmatrix.
  Tensor rC = convert_fragment<Element>(acc);                                                              // (MMA,MMA_M,MMA_N)
  auto sts = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, mma);
  auto sts_thr = sts.get_thread_slice(tid);
  copy(sts, sts_thr.retile_S(rC), sts_thr.partition_D(sC));
  __syncthreads();
  for (int i = tid; i < size(sC); i += G::kThreads) gC16(i) = sC(i);
}

using bf16 = cutlass::bfloat16_t;
using f16 = cutlass::half_t;
constexpr auto K = GMMA::Major::K, MN = GMMA::Major::MN;

// name: the GEMM. The dQ case: d = 64, two warpgroups split N (each 32 of d), so warpgroup 1's
// B descriptor starts 64 bytes into a 128-byte swizzle row; A and B MN-major, K = 128 keys.
#define WGMMA_CASES(X)                                                                   \
  X("SS bf16, B K-major, 128B swizzle", Gemm<bf16, 1, 1, 64, 64, false, K, K, kSw128>)    \
  X("SS f16, B MN-major, 128B swizzle", Gemm<f16, 1, 1, 64, 64, false, K, MN, kSw128>)    \
  X("RS bf16, B MN-major, 128B swizzle", Gemm<bf16, 1, 1, 64, 64, true, K, MN, kSw128>)   \
  X("RS f16, B K-major, N = 128, 128B swizzle", Gemm<f16, 1, 1, 128, 64, true, K, K, kSw128>) \
  X("SS bf16, two warpgroups in M, 128B swizzle", Gemm<bf16, 2, 1, 64, 64, false, K, K, kSw128>) \
  X("SS bf16, B K-major, 64B swizzle", Gemm<bf16, 1, 1, 64, 32, false, K, K, kSw64>)     \
  X("SS f16, B MN-major, 64B swizzle", Gemm<f16, 1, 1, 64, 32, false, K, MN, kSw64>)     \
  X("SS bf16, B K-major, 32B swizzle", Gemm<bf16, 1, 1, 32, 32, false, K, K, kSw32>)     \
  X("SS bf16, B MN-major, 32B swizzle", Gemm<bf16, 1, 1, 32, 32, false, K, MN, kSw32>)   \
  X("SS bf16, B K-major, no swizzle", Gemm<bf16, 1, 1, 32, 32, false, K, K, kNoSwizzle>) \
  X("SS f16, B MN-major, no swizzle", Gemm<f16, 1, 1, 32, 32, false, K, MN, kNoSwizzle>) \
  X("SS bf16, A and B MN-major, the dQ wgmma at d = 64", Gemm<bf16, 1, 2, 32, 128, false, MN, MN, kSw128>)

template <class G>
std::vector<at::Tensor> run(const at::Tensor& a, const at::Tensor& b, int64_t scenario) {
  const auto dtype = is_same_v<typename G::Element, bf16> ? at::kBFloat16 : at::kHalf;
  TORCH_CHECK(a.scalar_type() == dtype && b.scalar_type() == dtype && a.is_contiguous() && b.is_contiguous() &&
                  a.sizes() == at::IntArrayRef({G::kM, G::kK}) && b.sizes() == at::IntArrayRef({G::kN, G::kK}),
              "a: [", G::kM, ", ", G::kK, "] and b: [", G::kN, ", ", G::kK, "] contiguous ", dtype);
  at::Tensor c = at::empty({G::kM, G::kN}, a.options().dtype(at::kFloat));
  at::Tensor c16 = at::empty({G::kM, G::kN}, a.options());
  harness::poison(c);
  harness::poison(c16);
  harness::use_buffers({{"a", a, false}, {"b", b, false}, {"c", c, true}, {"c16", c16, true}});
  const Params p{a.data_ptr(), b.data_ptr(), c.data_ptr<float>(), c16.data_ptr(), int(scenario)};
  const uint64_t before = emu::wgmma::issued();
  emu::launch(dim3(1), dim3(G::kThreads), sizeof(typename G::SharedStorage), [&] { gemm_kernel<G>(p); });
  return {c, c16, at::full({}, int64_t(emu::wgmma::issued() - before), at::kLong)};
}

// ---- setmaxnreg

enum RegisterScenario {
  kKernelSplit,     // 384 threads: the producer warpgroup drops to 24, the two consumers rise to 240
  kOverdraw,        // the same, rising to 256: the second consumer waits for registers forever
  kNeverGranted,    // 640 threads: four warpgroups exit, the fifth asks for 256 (the launch gave 96)
  kBadCount,        // setmaxnreg.inc 100
};

void register_kernel(int scenario, int* out) {
  const int warpgroup = threadIdx.x / 128;
  switch (scenario) {
    case kKernelSplit:
    case kOverdraw:
      if (warpgroup == 0) {
        cutlass::arch::warpgroup_reg_dealloc<24>();
      } else if (scenario == kKernelSplit) {
        cutlass::arch::warpgroup_reg_alloc<240>();
      } else {
        cutlass::arch::warpgroup_reg_alloc<256>();
      }
      break;
    case kNeverGranted:
      if (warpgroup < 4) return;
      cutlass::arch::warpgroup_reg_alloc<256>();
      break;
    case kBadCount:
      cutlass::arch::warpgroup_reg_alloc<100>();
      break;
  }
  out[threadIdx.x] = emu::warpgroups().groups[warpgroup].registers;
}

}  // namespace wgmma_sm90

#define WGMMA_CASE_NAME(name, ...) name,
#define WGMMA_CASE_RUN(name, ...) \
  if (i++ == index) return run<__VA_ARGS__>(a, b, scenario);

// The names of the GEMM cases, in index order.
std::vector<std::string> wgmma_cases() {
  using namespace wgmma_sm90;
  return {WGMMA_CASES(WGMMA_CASE_NAME)};
}

// Runs GEMM case `index` under `scenario` (wgmma_sm90::Scenario): [C in fp32, C rounded and
// stored through stmatrix, the number of wgmma.mma_async emulated].
std::vector<at::Tensor> wgmma_gemm(int64_t index, int64_t scenario, const at::Tensor& a, const at::Tensor& b) {
  using namespace wgmma_sm90;
  int64_t i = 0;
  WGMMA_CASES(WGMMA_CASE_RUN)
  TORCH_CHECK(false, "no wgmma case ", index);
}

// Runs setmaxnreg scenario `scenario` (wgmma_sm90::RegisterScenario); returns each thread's
// register count afterwards.
at::Tensor setmaxnreg_scenario(int64_t scenario) {
  using namespace wgmma_sm90;
  const int threads = scenario == kNeverGranted ? 640 : 384;
  auto out = at::zeros({threads}, at::kInt);
  harness::use_buffers({{"out", out, true}});
  emu::launch(dim3(1), dim3(threads), 0, [&] { register_kernel(int(scenario), out.data_ptr<int>()); });
  return out;
}
