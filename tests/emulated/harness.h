#pragma once
// What every emulated launch file shares: the NaN fill of outputs and the registration of the
// global buffers the kernels may touch (emulated accesses outside them are errors).
#include <torch/extension.h>

#include <initializer_list>
#include <limits>
#include <string>
#include <utility>

#include "cuda_emu.h"

namespace harness {

// Fills a tensor the kernels are to write with NaN, so anything left unwritten shows.
inline void poison(const at::Tensor& t) {
  if (t.defined()) t.fill_(std::numeric_limits<double>::quiet_NaN());
}

// The launch's global buffers: (name, tensor, writable). Undefined tensors are skipped.
struct Buffer {
  const char* name;
  at::Tensor tensor;
  bool writable;
};

inline void use_buffers(std::initializer_list<Buffer> buffers) {
  auto& regions = emu::rt().regions;
  regions.clear();
  for (const Buffer& b : buffers) {
    if (!b.tensor.defined() || b.tensor.numel() == 0) continue;
    // The whole storage: views into a larger (poisoned) buffer may be read through their strides.
    const auto& storage = b.tensor.storage();
    regions.push_back({static_cast<const char*>(storage.data()), storage.nbytes(), b.name, b.writable});
  }
  emu::rt().count_nans = nullptr;
  emu::rt().nans_read = 0;
}

inline void check(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, ": the launcher returned error ", int(err));
}

}  // namespace harness
