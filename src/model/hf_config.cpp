// Shared config readers; see hf_config.h.
#include "model/hf_config.h"

#include <cmath>

#include "io/gguf.h"

namespace ballast::model {

using nlohmann::json;

Result<int64_t> json_int(const json& j, const char* key, const std::string& file,
                         std::optional<int64_t> def) {
  if (!j.contains(key) || j[key].is_null()) {
    if (def) return *def;
    return error(ErrorCode::kFormatError, file + ": field '" + key + "' missing");
  }
  const auto& v = j[key];
  if (!v.is_number_integer())
    return error(ErrorCode::kFormatError, file + ": field '" + key + "' must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

Result<double> json_num(const json& j, const char* key, const std::string& file,
                        std::optional<double> def) {
  if (!j.contains(key) || j[key].is_null()) {
    if (def) return *def;
    return error(ErrorCode::kFormatError, file + ": field '" + key + "' missing");
  }
  const auto& v = j[key];
  if (!v.is_number())
    return error(ErrorCode::kFormatError, file + ": field '" + key + "' must be a number, got " + v.dump());
  return v.get<double>();
}

static Status ids_field(const json& j, const char* key, const std::string& file,
                        std::vector<int64_t>& out) {
  if (!j.contains(key) || j[key].is_null()) return Status();
  const auto& v = j[key];
  if (v.is_number_integer()) {
    out.push_back(v.get<int64_t>());
  } else if (v.is_array()) {
    for (auto& e : v) {
      if (!e.is_number_integer())
        return error(ErrorCode::kFormatError, file + ": field '" + key + "' has a non-integer entry " + e.dump());
      out.push_back(e.get<int64_t>());
    }
  } else {
    return error(ErrorCode::kFormatError, file + ": field '" + key + "' must be an integer or list");
  }
  return Status();
}

static Status opt_id(const json& j, const char* key, const std::string& file, std::optional<int64_t>& out) {
  std::vector<int64_t> v;
  BALLAST_RETURN_IF_ERROR(ids_field(j, key, file, v));
  if (!v.empty()) out = v[0];
  return Status();
}

static Status num_list(const json& r, const char* key, const std::string& file, const std::string& field,
                       std::vector<double>& out) {
  out.clear();
  if (!r.contains(key) || !r[key].is_array())
    return error(ErrorCode::kFormatError, file + ": field '" + field + "." + key + "' must be a list of numbers");
  for (const auto& v : r[key]) {
    if (!v.is_number() || !(v.get<double>() > 0))
      return error(ErrorCode::kFormatError, file + ": field '" + field + "." + key + "' has an entry " + v.dump() +
                                                " (positive numbers)");
    out.push_back(v.get<double>());
  }
  return Status();
}

static Status parse_rope_dict(const json& r, const std::string& file, const std::string& field,
                              RopeParams& out) {
  if (r.contains("rope_theta")) {
    BALLAST_ASSIGN_OR_RETURN(out.theta, json_num(r, "rope_theta", file));
  }
  std::string type = "default";
  if (r.contains("rope_type") && r["rope_type"].is_string()) type = r["rope_type"].get<std::string>();
  else if (r.contains("type") && r["type"].is_string()) type = r["type"].get<std::string>();
  if (type == "default") {
    out.scaling = RopeScaling::kNone;
  } else if (type == "linear") {
    out.scaling = RopeScaling::kLinear;
    BALLAST_ASSIGN_OR_RETURN(out.factor, json_num(r, "factor", file));
  } else if (type == "llama3") {
    out.scaling = RopeScaling::kLlama3;
    BALLAST_ASSIGN_OR_RETURN(out.factor, json_num(r, "factor", file));
    BALLAST_ASSIGN_OR_RETURN(out.low_freq_factor, json_num(r, "low_freq_factor", file, 1.0));
    BALLAST_ASSIGN_OR_RETURN(out.high_freq_factor, json_num(r, "high_freq_factor", file, 4.0));
    BALLAST_ASSIGN_OR_RETURN(out.original_max_pos,
                             json_num(r, "original_max_position_embeddings", file, 8192.0));
  } else if (type == "longrope") {
    out.scaling = RopeScaling::kLongrope;
    BALLAST_RETURN_IF_ERROR(num_list(r, "short_factor", file, field, out.short_factor));
    BALLAST_RETURN_IF_ERROR(num_list(r, "long_factor", file, field, out.long_factor));
    // 0: not given; read_hf_rope derives them from the config's context lengths.
    BALLAST_ASSIGN_OR_RETURN(out.original_max_pos, json_num(r, "original_max_position_embeddings", file, 0.0));
    BALLAST_ASSIGN_OR_RETURN(out.factor, json_num(r, "factor", file, 0.0));
    BALLAST_ASSIGN_OR_RETURN(out.attention_factor, json_num(r, "attention_factor", file, 0.0));
  } else {
    return error(ErrorCode::kUnsupported, file + ": field '" + field + "': rope type '" + type +
                                              "' is not supported (default, linear, llama3, longrope)");
  }
  if (r.contains("partial_rotary_factor") && !r["partial_rotary_factor"].is_null()) {
    BALLAST_ASSIGN_OR_RETURN(out.partial_rotary, json_num(r, "partial_rotary_factor", file));
  }
  return Status();
}

// LongRoPE's lengths as transformers resolves them: original_max_position_embeddings at the
// top level of config.json wins over the rope dict's (then max_position_embeddings); the
// factor defaults to max_position_embeddings / original; the attention factor to
// sqrt(1 + ln(factor) / ln(original)) when the factor exceeds 1.
static Status finish_longrope(const json& cfg, const std::string& file, RopeParams& out) {
  BALLAST_ASSIGN_OR_RETURN(double max_pos, json_num(cfg, "max_position_embeddings", file, 4096.0));
  if (cfg.contains("original_max_position_embeddings") && !cfg["original_max_position_embeddings"].is_null()) {
    BALLAST_ASSIGN_OR_RETURN(out.original_max_pos, json_num(cfg, "original_max_position_embeddings", file));
  } else if (out.original_max_pos <= 0) {
    out.original_max_pos = max_pos;
  }
  if (out.original_max_pos < 2)
    return error(ErrorCode::kFormatError, file + ": field 'original_max_position_embeddings' must be at least 2");
  if (out.factor <= 0) out.factor = max_pos / out.original_max_pos;
  if (out.attention_factor <= 0)
    out.attention_factor =
        out.factor <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(out.factor) / std::log(out.original_max_pos));
  return Status();
}

Status read_hf_rope(const json& cfg, const std::string& file, const std::string& layer_type,
                    double default_theta, RopeParams& out) {
  out = RopeParams{};
  out.theta = default_theta;
  if (cfg.contains("rope_theta") && !cfg["rope_theta"].is_null()) {
    BALLAST_ASSIGN_OR_RETURN(out.theta, json_num(cfg, "rope_theta", file));
  }
  if (cfg.contains("partial_rotary_factor") && !cfg["partial_rotary_factor"].is_null()) {
    BALLAST_ASSIGN_OR_RETURN(out.partial_rotary, json_num(cfg, "partial_rotary_factor", file));
  }
  Status st;
  if (cfg.contains("rope_parameters") && cfg["rope_parameters"].is_object()) {
    const json& rp = cfg["rope_parameters"];
    if (!layer_type.empty() && rp.contains(layer_type) && rp[layer_type].is_object())
      st = parse_rope_dict(rp[layer_type], file, "rope_parameters." + layer_type, out);
    else if (!rp.contains("full_attention") && !rp.contains("sliding_attention"))
      st = parse_rope_dict(rp, file, "rope_parameters", out);
  } else if (cfg.contains("rope_scaling") && cfg["rope_scaling"].is_object() && layer_type != "sliding_attention") {
    st = parse_rope_dict(cfg["rope_scaling"], file, "rope_scaling", out);
  }
  if (!st.ok()) return st;
  if (!(out.partial_rotary > 0 && out.partial_rotary <= 1))
    return error(ErrorCode::kFormatError, file + ": field 'partial_rotary_factor' must be in (0, 1]");
  if (out.scaling == RopeScaling::kLongrope) return finish_longrope(cfg, file, out);
  return Status();
}

Status read_hf_common(const json& cfg, const std::string& file, ModelConfig& out) {
  BALLAST_ASSIGN_OR_RETURN(out.vocab_size, json_int(cfg, "vocab_size", file));
  BALLAST_ASSIGN_OR_RETURN(out.hidden, json_int(cfg, "hidden_size", file));
  BALLAST_ASSIGN_OR_RETURN(out.ffn, json_int(cfg, "intermediate_size", file));
  BALLAST_ASSIGN_OR_RETURN(out.n_layers, json_int(cfg, "num_hidden_layers", file));
  BALLAST_ASSIGN_OR_RETURN(out.n_heads, json_int(cfg, "num_attention_heads", file));
  BALLAST_ASSIGN_OR_RETURN(out.n_kv_heads, json_int(cfg, "num_key_value_heads", file, out.n_heads));
  if (out.n_heads <= 0 || out.hidden <= 0 || out.n_layers <= 0 || out.ffn <= 0 || out.vocab_size <= 0)
    return error(ErrorCode::kFormatError, file + ": sizes must be positive");
  BALLAST_ASSIGN_OR_RETURN(out.head_dim, json_int(cfg, "head_dim", file, out.hidden / out.n_heads));
  if (out.n_kv_heads <= 0 || out.n_heads % out.n_kv_heads)
    return error(ErrorCode::kFormatError, file + ": field 'num_key_value_heads' (" + std::to_string(out.n_kv_heads) +
                                              ") must divide num_attention_heads (" + std::to_string(out.n_heads) + ")");
  if (out.head_dim <= 0 || out.head_dim % 2)
    return error(ErrorCode::kFormatError, file + ": field 'head_dim' must be positive and even");
  BALLAST_ASSIGN_OR_RETURN(out.rms_eps, json_num(cfg, "rms_norm_eps", file, 1e-6));
  BALLAST_ASSIGN_OR_RETURN(out.max_pos, json_int(cfg, "max_position_embeddings", file, 4096));
  if (cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"].is_boolean())
    out.tie_embeddings = cfg["tie_word_embeddings"].get<bool>();
  BALLAST_RETURN_IF_ERROR(ids_field(cfg, "eos_token_id", file, out.eos_ids));
  BALLAST_RETURN_IF_ERROR(opt_id(cfg, "bos_token_id", file, out.bos_id));
  BALLAST_RETURN_IF_ERROR(opt_id(cfg, "pad_token_id", file, out.pad_id));
  if (cfg.contains("torch_dtype") && cfg["torch_dtype"].is_string()) out.dtype_name = cfg["torch_dtype"];
  if (cfg.contains("dtype") && cfg["dtype"].is_string()) out.dtype_name = cfg["dtype"];
  return Status();
}

Status read_generation_config(const json& g, const std::string& file, ModelConfig& out) {
  BALLAST_RETURN_IF_ERROR(ids_field(g, "eos_token_id", file, out.gen_eos_ids));
  BALLAST_RETURN_IF_ERROR(opt_id(g, "bos_token_id", file, out.gen_bos_id));
  BALLAST_RETURN_IF_ERROR(opt_id(g, "pad_token_id", file, out.gen_pad_id));
  auto num = [&](const char* k, std::optional<double>& dst) -> Status {
    if (g.contains(k) && !g[k].is_null()) {
      BALLAST_ASSIGN_OR_RETURN(double v, json_num(g, k, file));
      dst = v;
    }
    return Status();
  };
  BALLAST_RETURN_IF_ERROR(num("temperature", out.gen.temperature));
  BALLAST_RETURN_IF_ERROR(num("top_p", out.gen.top_p));
  BALLAST_RETURN_IF_ERROR(num("min_p", out.gen.min_p));
  BALLAST_RETURN_IF_ERROR(num("repetition_penalty", out.gen.repetition_penalty));
  if (g.contains("top_k") && !g["top_k"].is_null()) {
    BALLAST_ASSIGN_OR_RETURN(int64_t k, json_int(g, "top_k", file));
    out.gen.top_k = k;
  }
  if (g.contains("do_sample") && g["do_sample"].is_boolean()) out.gen.do_sample = g["do_sample"].get<bool>();
  return Status();
}

Status read_gguf_common(const io::GgufFile& f, const std::string& p, ModelConfig& out) {
  auto req = [&](const std::string& key, int64_t& dst) -> Status {
    auto v = f.get_int(p + "." + key);
    if (!v || *v <= 0)
      return error(ErrorCode::kFormatError, f.path() + ": GGUF field '" + p + "." + key + "' missing or invalid");
    dst = *v;
    return Status();
  };
  BALLAST_RETURN_IF_ERROR(req("block_count", out.n_layers));
  BALLAST_RETURN_IF_ERROR(req("embedding_length", out.hidden));
  BALLAST_RETURN_IF_ERROR(req("feed_forward_length", out.ffn));
  BALLAST_RETURN_IF_ERROR(req("attention.head_count", out.n_heads));
  out.n_kv_heads = f.get_int(p + ".attention.head_count_kv").value_or(out.n_heads);
  out.head_dim = f.get_int(p + ".attention.key_length").value_or(out.hidden / out.n_heads);
  if (out.n_kv_heads <= 0 || out.n_heads % out.n_kv_heads)
    return error(ErrorCode::kFormatError, f.path() + ": GGUF field '" + p + ".attention.head_count_kv' must divide head_count");
  if (out.head_dim <= 0 || out.head_dim % 2)
    return error(ErrorCode::kFormatError, f.path() + ": GGUF field '" + p + ".attention.key_length' must be positive and even");
  out.rms_eps = f.get_float(p + ".attention.layer_norm_rms_epsilon").value_or(1e-5);
  out.max_pos = f.get_int(p + ".context_length").value_or(4096);
  out.rope.theta = f.get_float(p + ".rope.freq_base").value_or(10000.0);
  auto stype = f.get_string(p + ".rope.scaling.type");
  if (stype && *stype == "linear") {
    out.rope.scaling = RopeScaling::kLinear;
    out.rope.factor = f.get_float(p + ".rope.scaling.factor").value_or(1.0);
  } else if (stype && *stype != "none") {
    return error(ErrorCode::kUnsupported, f.path() + ": GGUF field '" + p + ".rope.scaling.type' = '" + *stype + "' is not supported");
  }
  if (auto v = f.get_int(p + ".vocab_size")) out.vocab_size = *v;
  if (auto v = f.get_int("tokenizer.ggml.bos_token_id")) out.bos_id = *v;
  if (auto v = f.get_int("tokenizer.ggml.eos_token_id")) out.eos_ids = {*v};
  if (auto v = f.get_int("tokenizer.ggml.padding_token_id")) out.pad_id = *v;
  if (auto v = f.get_int("general.file_type")) out.dtype_name = "gguf file_type " + std::to_string(*v);
  return Status();
}

}  // namespace ballast::model
