// Fast tokenizer.json file loader: a SAX pass builds the DOM for everything except
// model.vocab (object form) and model.merges, which go straight into flat vectors —
// the DOM for 262k vocab entries + 515k merges is most of nlohmann's load time.
#include "io/gguf.h"
#include "tokenizer/legacy.h"
#include "tokenizer/tokenizer_json.h"

namespace ballast::tokenizer {
namespace {

class Sax : public nlohmann::json_sax<json> {
 public:
  json root;
  PrebuiltVocab pre;
  bool saw_vocab = false, saw_merges = false;
  std::string err;

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override {
    if (mode_ == kVocab) { pre.vocab.emplace_back(std::move(vkey_), int32_t(v)); return true; }
    return value(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    if (mode_ == kVocab) { pre.vocab.emplace_back(std::move(vkey_), int32_t(v)); return true; }
    return value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override {
    if (mode_ != kDom) return fail("model: unexpected number in vocab/merges");
    return value(json(v));
  }
  bool string(string_t& v) override {
    if (mode_ == kMerges) {
      size_t sp = v.find(' ');
      if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos)
        return fail("model.merges: entry \"" + v + "\" is not \"a b\"");
      pre.merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
      return true;
    }
    if (mode_ == kPair) {
      pair_.push_back(std::move(v));
      return true;
    }
    if (mode_ == kVocab) return fail("model.vocab: id must be an integer");
    return value(json(std::move(v)));
  }
  bool binary(binary_t&) override { return fail("binary values are not JSON"); }
  bool start_object(std::size_t) override {
    if (mode_ != kDom) return fail("model.vocab/merges: unexpected object");
    if (stack_.size() == 2 && in_model() && key_ == "vocab") {
      mode_ = kVocab;
      saw_vocab = true;
      return true;
    }
    return open(json::object());
  }
  bool key(string_t& k) override {
    if (mode_ == kVocab) { vkey_ = std::move(k); return true; }
    key_ = std::move(k);
    return true;
  }
  bool end_object() override {
    if (mode_ == kVocab) {
      mode_ = kDom;
      return value(json::object());  // placeholder: model.vocab = {}
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == kMerges) {
      mode_ = kPair;
      pair_.clear();
      return true;
    }
    if (mode_ != kDom) return fail("model.vocab/merges: unexpected array");
    if (stack_.size() == 2 && in_model() && key_ == "merges") {
      mode_ = kMerges;
      saw_merges = true;
      return true;
    }
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == kPair) {
      if (pair_.size() != 2) return fail("model.merges: entry is not [a, b]");
      pre.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      mode_ = kMerges;
      return true;
    }
    if (mode_ == kMerges) {
      mode_ = kDom;
      return value(json::array());
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& ex) override {
    if (err.empty()) err = ex.what();
    return false;
  }

 private:
  enum Mode { kDom, kVocab, kMerges, kPair };
  bool fail(std::string m) {
    if (err.empty()) err = std::move(m);
    return false;
  }
  bool in_model() const { return keys_.size() == 2 && keys_[1] == "model"; }
  json* place(json&& v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json* parent = stack_.back();
    if (parent->is_array()) {
      parent->push_back(std::move(v));
      return &parent->back();
    }
    json& slot = (*parent)[key_];
    slot = std::move(v);
    return &slot;
  }
  bool value(json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(json&& v) {
    std::string k = stack_.empty() || stack_.back()->is_array() ? std::string() : key_;
    json* p = place(std::move(v));
    stack_.push_back(p);
    keys_.push_back(std::move(k));
    return true;
  }
  Mode mode_ = kDom;
  std::vector<json*> stack_;
  std::vector<std::string> keys_;  // key under which each open container sits
  std::string key_, vkey_;
  std::vector<std::string> pair_;
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> load_tokenizer_json_file(const std::string& path, const json& cfg) {
  BALLAST_ASSIGN_OR_RETURN(std::string text, read_file(path));
  Sax sax;
  bool ok = false;
  try {
    ok = json::sax_parse(text, &sax);
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormatError, path + ": invalid JSON: " + e.what());
  }
  if (!ok) return error(ErrorCode::kFormatError, path + ": invalid JSON: " + sax.err);
  text.clear();
  text.shrink_to_fit();
  bool use_pre = sax.saw_vocab;
  if (!use_pre && sax.saw_merges) {
    return error(ErrorCode::kFormatError, path + ": model.merges without an object model.vocab");
  }
  return build_from_json(sax.root, cfg, path, use_pre ? &sax.pre : nullptr);
}

}  // namespace ballast::tokenizer
