// Post-processors: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel
// (offsets only: ids unchanged) and Sequence. Only single sequences are encoded.
#include "tokenizer/components.h"

namespace ballast::tokenizer {
namespace {

class BosEos : public PostProcessor {
 public:
  BosEos(std::vector<int32_t> prefix, std::vector<int32_t> suffix) : prefix_(std::move(prefix)), suffix_(std::move(suffix)) {}
  void process(std::vector<int32_t>& ids, bool add_special) const override {
    if (!add_special) return;
    if (!prefix_.empty()) ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
    ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  }

 private:
  std::vector<int32_t> prefix_, suffix_;
};

class Identity : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids, bool add_special) const override {
    for (auto& p : items_) p->process(ids, add_special);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> items_;
};

Result<int32_t> pair_id(const json& j, const char* key, const char* where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer())
    return error(ErrorCode::kFormatError, std::string(where) + ": \"" + key + "\" must be [token, id]");
  return (*it)[1].get<int32_t>();
}

Result<std::unique_ptr<PostProcessor>> make_template(const json& j) {
  auto single = j.find("single");
  if (single == j.end() || !single->is_array())
    return error(ErrorCode::kFormatError, "post_processor TemplateProcessing: \"single\" must be an array");
  const json& specials = j.value("special_tokens", json::object());
  std::vector<int32_t> prefix, suffix;
  bool seen_seq = false;
  for (auto& piece : *single) {
    if (piece.contains("Sequence")) {
      seen_seq = true;
      continue;
    }
    if (!piece.contains("SpecialToken"))
      return error(ErrorCode::kFormatError, "post_processor TemplateProcessing: unknown template piece " + piece.dump());
    std::string name = json_str(piece["SpecialToken"], "id");
    auto st = specials.find(name);
    if (st == specials.end() || !st->contains("ids") || !(*st)["ids"].is_array())
      return error(ErrorCode::kFormatError,
                   "post_processor TemplateProcessing: special token \"" + name + "\" missing from special_tokens");
    for (auto& id : (*st)["ids"]) (seen_seq ? suffix : prefix).push_back(id.get<int32_t>());
  }
  return std::unique_ptr<PostProcessor>(new BosEos(std::move(prefix), std::move(suffix)));
}

}  // namespace

Result<std::unique_ptr<PostProcessor>> make_post_processor(const json& j) {
  if (j.is_null()) return std::unique_ptr<PostProcessor>();
  if (!j.is_object()) return error(ErrorCode::kFormatError, "post_processor: expected an object");
  std::string type = json_str(j, "type");
  try {
    if (type == "TemplateProcessing") return make_template(j);
    if (type == "ByteLevel") return std::unique_ptr<PostProcessor>(new Identity());
    if (type == "RobertaProcessing" || type == "BertProcessing") {
      BALLAST_ASSIGN_OR_RETURN(int32_t cls, pair_id(j, "cls", type.c_str()));
      BALLAST_ASSIGN_OR_RETURN(int32_t sep, pair_id(j, "sep", type.c_str()));
      return std::unique_ptr<PostProcessor>(new BosEos({cls}, {sep}));
    }
    if (type == "Sequence") {
      std::vector<std::unique_ptr<PostProcessor>> items;
      auto it = j.find("processors");
      if (it != j.end() && it->is_array()) {
        for (auto& e : *it) {
          BALLAST_ASSIGN_OR_RETURN(auto p, make_post_processor(e));
          if (p) items.push_back(std::move(p));
        }
      }
      return std::unique_ptr<PostProcessor>(new SequenceProcessor(std::move(items)));
    }
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormatError, "post_processor " + type + ": " + e.what());
  }
  return error(ErrorCode::kUnsupported, "post_processor type \"" + type + "\" is not supported");
}

std::unique_ptr<PostProcessor> make_bos_eos_post_processor(std::vector<int32_t> prefix, std::vector<int32_t> suffix) {
  return std::make_unique<BosEos>(std::move(prefix), std::move(suffix));
}

}  // namespace ballast::tokenizer
