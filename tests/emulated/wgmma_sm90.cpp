// The emulated wgmma, stmatrix and setmaxnreg (wgmma_sm90.h, setmaxnreg.h) under CuTe's own GMMA
// and stmatrix atoms, built exactly as the sm90 kernels build them (sm90/flash_config.cuh):
// C = 2 A B^T (two batches of wgmmas, the second accumulating onto the first's retired result)
// over shared-memory tiles of every swizzle the descriptors encode, then the same accumulator
// stored through stmatrix; plus tiny kernels that each plant one misuse.
#include "harness.h"

#include <tuple>

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
  kOverwriteA,           // an A register (RS) rewritten between the wgmma's issue and its retire
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
  float* c;       // M x N, row-major: the accumulator, 2 A B^T
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
  if constexpr (!is_same_v<typename decltype(tCrA)::value_type, GmmaDescriptor>) {
    if (p.scenario == kOverwriteA && tid == 0) tCrA(0) = -tCrA(0);
  }
  if (p.scenario == kReadBeforeWait) copy(acc, tCgC);
  wgmma_wait<0>(acc);
  // Once more onto the retired accumulator (scale-d = 1, C from the registers): C = 2 A B^T.
  if (p.scenario == kCorrect) {
    wgmma_async<false>(mma, tCrA, tCrB, acc);
    wgmma_wait<0>(acc);
  }
  if (p.scenario != kReadBeforeWait) copy(acc, tCgC);

  // The kernels' epilogue: the accumulator rounded to 16 bits, stored through stmatrix.
  Tensor rC = convert_fragment<Element>(acc);                                                              // (MMA,MMA_M,MMA_N)
  auto sts = make_tiled_copy_C(Copy_Atom<SM90_U32x4_STSM_N, Element>{}, mma);
  auto sts_thr = sts.get_thread_slice(tid);
  copy(sts, sts_thr.retile_S(rC), sts_thr.partition_D(sC));
  __syncthreads();
  for (int i = tid; i < size(sC); i += G::kThreads) gC16(i) = sC(i);
}

// The forward's register reuse: S = Q K^T (SS), P = S rounded to 16 bits and fed back as the A
// operand of O = P V (RS) through acc_as_operand_a, V as the MN-major SmemTileT view; two
// warpgroups stacked in M, d = 64, 64 keys.
template <class Element>
struct Chain {
  static constexpr int kWarpGroups = 2, kM = 128, kKeys = 64, kHeadDim = 64, kThreads = 256;
  using SmemQ = SmemTile<Element, kM, kHeadDim>;          // (M,d)
  using SmemK = SmemTile<Element, kKeys, kHeadDim>;       // (keys,d); V alike
  using SmemVt = SmemTileT<Element, kKeys, kHeadDim>;     // (d,keys)
  using MmaQK = TiledMmaSS<Element, kWarpGroups, kKeys, kHeadDim>;
  using MmaPV = TiledMmaRS<Element, kWarpGroups, kHeadDim, kKeys, GMMA::Major::MN>;
  struct SharedStorage {
    cute::array_aligned<Element, cute::cosize_v<SmemQ>, 1024> q;
    cute::array_aligned<Element, cute::cosize_v<SmemK>, 1024> k;
    cute::array_aligned<Element, cute::cosize_v<SmemK>, 1024> v;
  };
};

template <class Element>
void chain_kernel(const Element* q, const Element* k, const Element* v, Element* p, float* o) {
  using C = Chain<Element>;
  auto& smem = *reinterpret_cast<typename C::SharedStorage*>(emu::rt().smem);
  const int tid = threadIdx.x;
  using MD = Shape<Int<C::kM>, Int<C::kHeadDim>>;
  using ND = Shape<Int<C::kKeys>, Int<C::kHeadDim>>;
  Tensor gQ = make_tensor(make_gmem_ptr(q), make_layout(MD{}, LayoutRight{}));                     // (M,d)
  Tensor gK = make_tensor(make_gmem_ptr(k), make_layout(ND{}, LayoutRight{}));                     // (keys,d)
  Tensor gV = make_tensor(make_gmem_ptr(v), make_layout(ND{}, LayoutRight{}));                     // (keys,d)
  Tensor gO = make_tensor(make_gmem_ptr(o), make_layout(MD{}, LayoutRight{}));                     // (M,d)
  Tensor gP = make_tensor(make_gmem_ptr(p), make_layout(Shape<Int<C::kM>, Int<C::kKeys>>{}, LayoutRight{}));  // (M,keys)
  Tensor sQ = make_tensor(make_smem_ptr(smem.q.data()), typename C::SmemQ{});                      // (M,d)
  Tensor sK = make_tensor(make_smem_ptr(smem.k.data()), typename C::SmemK{});                      // (keys,d)
  Tensor sV = make_tensor(make_smem_ptr(smem.v.data()), typename C::SmemK{});                      // (keys,d)
  Tensor sVt = make_tensor(make_smem_ptr(smem.v.data()), typename C::SmemVt{});                    // (d,keys)
  for (int i = tid; i < size(sQ); i += C::kThreads) sQ(i) = gQ(i);
  for (int i = tid; i < size(sK); i += C::kThreads) sK(i) = gK(i);
  for (int i = tid; i < size(sV); i += C::kThreads) sV(i) = gV(i);
  __syncthreads();

  typename C::MmaQK mma_qk;
  typename C::MmaPV mma_pv;
  auto thr_qk = mma_qk.get_thread_slice(tid);
  auto thr_pv = mma_pv.get_thread_slice(tid);
  Tensor tSrQ = thr_qk.partition_fragment_A(sQ);                                                  // (MMA,MMA_M,MMA_K)
  Tensor tSrK = thr_qk.partition_fragment_B(sK);                                                  // (MMA,MMA_N,MMA_K)
  Tensor tOrVt = thr_pv.partition_fragment_B(sVt);                                                // (MMA,MMA_N,MMA_K)
  Tensor acc_s = partition_fragment_C(mma_qk, Shape<Int<C::kM>, Int<C::kKeys>>{});                // (MMA,MMA_M,MMA_N)
  Tensor acc_o = partition_fragment_C(mma_pv, MD{});                                              // (MMA,MMA_M,MMA_N)
  wgmma_async<true>(mma_qk, tSrQ, tSrK, acc_s);
  wgmma_wait<0>(acc_s);
  Tensor rP = convert_fragment<Element>(acc_s);                                                   // (MMA,MMA_M,MMA_N)
  Tensor tOrP = make_tensor(rP.data(), acc_as_operand_a(rP.layout()));                            // (MMA,MMA_M,MMA_K)
  wgmma_async<true>(mma_pv, tOrP, tOrVt, acc_o);
  wgmma_wait<0>(acc_o, tOrP);
  copy(acc_o, thr_pv.partition_C(gO));
  copy(rP, thr_qk.partition_C(gP));
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

#define WGMMA_CASE_SHAPE(name, ...)                                                                   \
  {name, __VA_ARGS__::kM, __VA_ARGS__::kN, __VA_ARGS__::kK,                                          \
   std::is_same_v<typename __VA_ARGS__::Element, wgmma_sm90::bf16> ? "bfloat16" : "float16"},
#define WGMMA_CASE_RUN(name, ...) \
  if (i++ == index) return run<__VA_ARGS__>(a, b, scenario);

// The GEMM cases in index order: (name, M, N, K, element type).
std::vector<std::tuple<std::string, int, int, int, std::string>> wgmma_cases() {
  using namespace wgmma_sm90;
  return {WGMMA_CASES(WGMMA_CASE_SHAPE)};
}

// Runs GEMM case `index` under `scenario` (wgmma_sm90::Scenario): [C in fp32, C rounded and
// stored through stmatrix, the number of wgmma.mma_async emulated].
std::vector<at::Tensor> wgmma_gemm(int64_t index, int64_t scenario, const at::Tensor& a, const at::Tensor& b) {
  using namespace wgmma_sm90;
  int64_t i = 0;
  WGMMA_CASES(WGMMA_CASE_RUN)
  TORCH_CHECK(false, "no wgmma case ", index);
}

// O = P V with P = round16(Q K^T) through the forward's register reuse (wgmma_sm90::Chain): q
// [128, 64], k and v [64, 64], bf16. Returns [P, O].
std::vector<at::Tensor> wgmma_chain(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  using namespace wgmma_sm90;
  using C = Chain<bf16>;
  for (const at::Tensor* t : {&q, &k, &v}) {
    TORCH_CHECK(t->scalar_type() == at::kBFloat16 && t->is_contiguous() && t->size(1) == C::kHeadDim,
                "q, k, v: contiguous bf16 with d = 64");
  }
  TORCH_CHECK(q.size(0) == C::kM && k.size(0) == C::kKeys && v.size(0) == C::kKeys, "q: 128 rows, k and v: 64");
  at::Tensor o = at::empty({C::kM, C::kHeadDim}, q.options().dtype(at::kFloat));
  at::Tensor p = at::empty({C::kM, C::kKeys}, q.options());
  harness::poison(o);
  harness::poison(p);
  harness::use_buffers({{"q", q, false}, {"k", k, false}, {"v", v, false}, {"p", p, true}, {"o", o, true}});
  const auto* qp = static_cast<const bf16*>(q.data_ptr());
  const auto* kp = static_cast<const bf16*>(k.data_ptr());
  const auto* vp = static_cast<const bf16*>(v.data_ptr());
  emu::launch(dim3(1), dim3(C::kThreads), sizeof(C::SharedStorage),
              [&] { chain_kernel<bf16>(qp, kp, vp, static_cast<bf16*>(p.data_ptr()), o.data_ptr<float>()); });
  return {p, o};
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
