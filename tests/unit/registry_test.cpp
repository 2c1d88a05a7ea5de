// The registry and the GGUF bindings are complete: every architecture has HF and GGUF
// names, no name is claimed twice, and every tensor an architecture requires (with all its
// optional features on) can come from a GGUF file through its binding table.
#include <gtest/gtest.h>

#include <set>

#include "model/loader.h"
#include "model/registry.h"

using namespace ballast;

TEST(Registry, NamesAreUniqueAndResolve) {
  std::set<std::string> hf, gguf;
  for (const auto* a : model::registry()) {
    EXPECT_FALSE(a->hf_names.empty()) << a->key;
    EXPECT_FALSE(a->gguf_names.empty()) << a->key;
    EXPECT_NE(a->create, nullptr) << a->key;
    for (const auto& n : a->hf_names) {
      EXPECT_TRUE(hf.insert(n).second) << n << " claimed twice";
      EXPECT_EQ(model::find_arch_hf(n), a) << n;
    }
    for (const auto& n : a->gguf_names) {
      EXPECT_TRUE(gguf.insert(n).second) << n << " claimed twice";
      EXPECT_EQ(model::find_arch_gguf(n), a) << n;
    }
  }
}

TEST(Registry, EveryRequiredTensorHasAGgufBinding) {
  for (const auto* a : model::registry()) {
    model::ModelConfig c;
    c.arch = a->key;
    c.n_layers = 2;
    c.qk_norm = c.attn_bias = true;
    c.tie_embeddings = false;
    std::set<std::string> bound;
    for (const auto& b : a->gguf_bindings) {
      std::string g = b.gguf;
      for (int l = 0; l < 2; ++l) {
        std::string name = g;
        if (auto p = name.find("{}"); p != std::string::npos) name.replace(p, 2, std::to_string(l));
        const std::string hf = model::bind_gguf_name(*a, name);
        EXPECT_FALSE(hf.empty()) << a->key << ": binding " << name << " does not resolve";
        bound.insert(hf);
      }
    }
    for (const auto& r : a->required_tensors(c))
      EXPECT_TRUE(bound.count(r)) << a->key << ": required tensor " << r << " has no GGUF binding";
    EXPECT_TRUE(bound.count(a->embedding_tensor)) << a->key << ": embedding tensor unbound";
  }
}
