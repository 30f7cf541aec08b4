#pragma once
// The op namespace, named once for TORCH_LIBRARY and every TORCH_LIBRARY_IMPL.
#define HEADMIX_NAMESPACE headmix
