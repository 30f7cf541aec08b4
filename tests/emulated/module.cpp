// The Python module of the emulated kernels (tests/test_kernels_emulated.py): the emulator's
// shared memory under the name each kernel declares, the CUDA runtime calls the launchers
// make, and one function per launch file.
#include "harness.h"

// 1024-byte aligned, the period of the 128-byte swizzle: CuTe's swizzled shared-memory views
// permute host address bits, TMA (and wgmma) shared-window address bits; they agree only if the
// window starts on such a boundary (tests/test_kernels_emulated.py's TMA round trip checks it).
extern "C" {
alignas(1024) unsigned char emu_shared_memory[emu::kSharedMemoryBytes];
}

namespace headmix::kernels {
EMU_SHARED_MEMORY_ALIAS(float, staged)  // mix_heads_dw_partial_kernel
namespace sm80 {
EMU_SHARED_MEMORY_ALIAS(char, smem_buf)        // flash kernels
EMU_SHARED_MEMORY_ALIAS(unsigned char, smem)  // vhead_decode_kernel
}  // namespace sm80
namespace sm90 {
EMU_SHARED_MEMORY_ALIAS(char, smem_buf)  // flash kernels
}  // namespace sm90
}  // namespace headmix::kernels

// The launchers return cudaGetLastError(); the emulated module links no CUDA library.
extern "C" cudaError_t cudaGetLastError() { return cudaSuccess; }

std::vector<at::Tensor> emulated_flash_attn_fwd(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                std::optional<double>, bool, int64_t, int64_t);
std::vector<at::Tensor> emulated_flash_attn_fwd_sm90(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                     std::optional<double>, bool, int64_t, int64_t);
std::vector<at::Tensor> emulated_flash_attn_bwd(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                const std::optional<at::Tensor>&, std::optional<double>, bool,
                                                int64_t, int64_t, bool);
std::vector<at::Tensor> emulated_flash_attn_bwd_sm90(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                     const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                     const std::optional<at::Tensor>&, std::optional<double>, bool,
                                                     int64_t, int64_t, bool);
at::Tensor emulated_mix_heads(const at::Tensor&, const at::Tensor&, int64_t, const std::optional<at::Tensor>&,
                              const std::optional<at::Tensor>&, int64_t);
std::vector<at::Tensor> emulated_mix_heads_backward(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                                    const std::optional<at::Tensor>&,
                                                    const std::optional<at::Tensor>&, int64_t, int64_t);
std::vector<at::Tensor> emulated_vhead_decode(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                              const at::Tensor&, const std::optional<at::Tensor>&,
                                              const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
                                              std::optional<double>, bool, int64_t, int64_t);
void emulated_kv_cache_append(const at::Tensor&, const at::Tensor&, at::Tensor&, at::Tensor&, const at::Tensor&,
                              const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
                              const std::optional<at::Tensor>&, const std::optional<at::Tensor>&);
at::Tensor planted_bug(int64_t bug, const at::Tensor& in);
at::Tensor sync_sm90_scenario(int64_t scenario, const at::Tensor& in);
std::vector<at::Tensor> tma_sm90_scenario(int64_t scenario, const at::Tensor& x, const at::Tensor& out);
std::tuple<int64_t, std::string> tma_encode_violation(int64_t violation);
std::vector<std::tuple<std::string, int, int, int, std::string>> wgmma_cases();
std::vector<at::Tensor> wgmma_gemm(int64_t index, int64_t scenario, const at::Tensor& a, const at::Tensor& b);
std::vector<at::Tensor> wgmma_chain(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);
at::Tensor setmaxnreg_scenario(int64_t scenario);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_schedule", [](bool reverse_threads, bool early_cp_async) {
    emu::rt().schedule = emu::Schedule{reverse_threads, early_cp_async};
  });
  m.def("flash_attn_fwd", &emulated_flash_attn_fwd);
  m.def("flash_attn_fwd_sm90", &emulated_flash_attn_fwd_sm90);
  m.def("flash_attn_bwd", &emulated_flash_attn_bwd);
  m.def("flash_attn_bwd_sm90", &emulated_flash_attn_bwd_sm90);
  m.def("mix_heads", &emulated_mix_heads);
  m.def("mix_heads_backward", &emulated_mix_heads_backward);
  m.def("vhead_decode", &emulated_vhead_decode);
  m.def("kv_cache_append", &emulated_kv_cache_append);
  m.def("planted_bug", &planted_bug);
  m.def("sync_sm90", &sync_sm90_scenario);
  m.def("tma_sm90", &tma_sm90_scenario);
  m.def("tma_encode_violation", &tma_encode_violation);
  m.def("wgmma_cases", &wgmma_cases);
  m.def("wgmma_gemm", &wgmma_gemm);
  m.def("wgmma_chain", &wgmma_chain);
  m.def("setmaxnreg", &setmaxnreg_scenario);
}
