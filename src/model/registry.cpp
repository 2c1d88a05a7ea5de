// The list of architectures.
#include "model/registry.h"

namespace ballast::model {

const std::vector<const ArchSpec*>& registry() {
  static const std::vector<const ArchSpec*> kAll = {&llama_arch(), &gemma3_arch(), &gpt2_arch(), &phi3_arch(), &t5_arch()};
  return kAll;
}

const ArchSpec* find_arch_hf(const std::string& hf_name) {
  for (auto* a : registry())
    for (auto& n : a->hf_names)
      if (n == hf_name) return a;
  return nullptr;
}

const ArchSpec* find_arch_gguf(const std::string& gguf_arch) {
  for (auto* a : registry())
    for (auto& n : a->gguf_names)
      if (n == gguf_arch) return a;
  return nullptr;
}

}  // namespace ballast::model
