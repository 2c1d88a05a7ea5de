// Unit tests for tokenizer components, added-token handling, invalid UTF-8 and the
// streaming detokenizer. Real tokenizers (shared/tokenizers, zstd) are used when present.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <random>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace ballast;
using namespace ballast::tokenizer;
using nlohmann::json;

namespace {

// A tiny byte-level BPE: every byte-level char of "abc Ġ" plus a few merges.
json tiny_bpe_json() {
  json vocab = json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[byte_to_char_utf8(uint8_t(b))] = id++;
  vocab["ab"] = id++;
  vocab["abc"] = id++;
  vocab["Ġa"] = id++;
  json j = {
      {"version", "1.0"},
      {"added_tokens",
       json::array({{{"id", 300}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}},
                    {{"id", 301}, {"content", "<sp>"}, {"special", true}, {"normalized", false}, {"lstrip", true},
                     {"rstrip", true}},
                    {{"id", 302}, {"content", "<user>"}, {"special", false}, {"normalized", false}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<|end|>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"special_tokens", {{"<|end|>", {{"id", "<|end|>"}, {"ids", {300}}, {"tokens", {"<|end|>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b", "ab c", "Ġ a"})}}}};
  return j;
}

std::unique_ptr<Tokenizer> tiny() {
  auto r = Tokenizer::from_json(tiny_bpe_json(), json(), "tiny");
  EXPECT_TRUE(r.ok()) << r.status().message();
  return std::move(r).value();
}

std::vector<int32_t> enc(const Tokenizer& t, std::string_view s, bool add = false, bool parse = true) {
  auto r = t.encode(s, EncodeOptions{add, parse});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : std::vector<int32_t>{};
}

std::string dec(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip = false) {
  auto r = t.decode(ids, skip);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r.value() : "";
}

std::string shared_dir() { return BALLAST_SHARED_DIR; }

// Decompresses shared/tokenizers/NAME/tokenizer.json into a temp dir; "" if unavailable.
std::string real_tokenizer(const std::string& name) {
  namespace fs = std::filesystem;
  std::string src = shared_dir() + "/tokenizers/" + name + "/tokenizer.json.zst";
  if (!fs::exists(src)) return "";
  fs::path dir = fs::temp_directory_path() / ("ballast_tok_test_" + name);
  fs::create_directories(dir);
  fs::path out = dir / "tokenizer.json";
  if (!fs::exists(out)) {
    std::string cmd = "zstd -q -d -f '" + src + "' -o '" + out.string() + "' 2>/dev/null";
    if (std::system(cmd.c_str()) != 0) return "";
  }
  return out.string();
}

}  // namespace

TEST(TokenizerUnicode, LossyMatchesMaximalSubpartRule) {
  EXPECT_EQ(utf8_lossy("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(utf8_lossy("\xE2\x82"), "\xEF\xBF\xBD");                   // truncated 3-byte: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xF0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong: per byte
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(utf8_incomplete_tail("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8_incomplete_tail("ab\xE2\x82\xAC"), 0u);
}

TEST(TokenizerBpe, MergesAndByteLevel) {
  auto t = tiny();
  EXPECT_EQ(enc(*t, "abc"), (std::vector<int32_t>{257}));
  EXPECT_EQ(enc(*t, " a"), (std::vector<int32_t>{258}));
  EXPECT_EQ(dec(*t, enc(*t, "abc a\n\xE2\x82\xAC")), "abc a\n\xE2\x82\xAC");
}

TEST(TokenizerAddedTokens, SpecialParsingAndStrip) {
  auto t = tiny();
  EXPECT_EQ(enc(*t, "a<|end|>b"), (std::vector<int32_t>{'a' - 33 + 0 >= 0 ? *t->token_to_id("a") : 0, 300,
                                                        *t->token_to_id("b")}));
  // parse_special=false: the literal is plain text, but non-special <user> still matches.
  auto plain = enc(*t, "<|end|><user>", false, false);
  EXPECT_EQ(plain.back(), 302);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 300), 0);
  // lstrip/rstrip swallow surrounding whitespace.
  EXPECT_EQ(enc(*t, "a  <sp>  b"), (std::vector<int32_t>{*t->token_to_id("a"), 301, *t->token_to_id("b")}));
  // add_special prepends the template's token.
  EXPECT_EQ(enc(*t, "a", true).front(), 300);
  EXPECT_TRUE(t->is_special(300));
  EXPECT_FALSE(t->is_special(302));
  EXPECT_EQ(dec(*t, {300, *t->token_to_id("a"), 302}, true), "a<user>");
}

TEST(TokenizerAddedTokens, LimitSpecialMatching) {
  auto t = tiny();
  t->limit_special_matching(300);  // ids >= 300 are unembeddable
  auto ids = enc(*t, "<|end|><user>");
  for (int32_t id : ids) EXPECT_LT(id, 300);
  EXPECT_EQ(dec(*t, ids), "<|end|><user>");
}

TEST(TokenizerInvalidUtf8, ReplacedNeverCrashes) {
  auto t = tiny();
  auto ids = enc(*t, "a\xFF" "b\xC3");
  EXPECT_EQ(dec(*t, ids), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string s;
    for (int k = 0; k < 40; ++k) s.push_back(char(rng() & 0xFF));
    auto r = t->encode(s, EncodeOptions{false, true});
    ASSERT_TRUE(r.ok());
    auto d = t->decode(r.value(), false);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d.value(), utf8_lossy(s));
  }
}

TEST(TokenizerJson, ErrorsNameTheField) {
  json j = tiny_bpe_json();
  j["model"]["merges"].push_back("zz qq");
  auto r = Tokenizer::from_json(j, json(), "bad.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad.json"), std::string::npos);
  EXPECT_NE(r.status().message().find("zz"), std::string::npos);
  j = tiny_bpe_json();
  j["pre_tokenizer"] = {{"type", "NoSuchThing"}};
  r = Tokenizer::from_json(j, json(), "bad.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("NoSuchThing"), std::string::npos);
}

TEST(TokenizerSettings, ConfigFields) {
  json cfg = {{"bos_token", {{"content", "<|end|>"}, {"lstrip", false}}},
              {"eos_token", "<user>"},
              {"add_bos_token", true},
              {"clean_up_tokenization_spaces", false},
              {"chat_template", json::array({{{"name", "default"}, {"template", "T1"}}, {{"name", "tool_use"}, {"template", "T2"}}})}};
  auto r = Tokenizer::from_json(tiny_bpe_json(), cfg, "tiny");
  ASSERT_TRUE(r.ok());
  const auto& s = r.value()->settings();
  EXPECT_EQ(s.bos_id, 300);
  EXPECT_EQ(s.eos_id, 302);
  EXPECT_EQ(s.add_bos_token, true);
  EXPECT_EQ(s.chat_template, "T1");
  EXPECT_EQ(s.named_chat_templates["tool_use"], "T2");
}

// Joined deltas equal the one-shot decode with the same clean-up choice (off: lossless).
static void check_stream(const Tokenizer& t, const std::vector<int32_t>& ids, bool skip, bool clean_up = false) {
  StreamDecoder sd(t, skip, clean_up);
  std::string all;
  for (int32_t id : ids) {
    auto d = sd.push(id);
    ASSERT_TRUE(d.ok());
    // Each delta is valid UTF-8 on its own.
    EXPECT_TRUE(utf8_valid(d.value())) << d.value();
    all += d.value();
  }
  auto f = sd.finish();
  ASSERT_TRUE(f.ok());
  all += f.value();
  EXPECT_EQ(all, t.decode_with(ids, skip, clean_up).value());
}

TEST(TokenizerStream, TinyByteLevelSplitsUtf8) {
  auto t = tiny();
  // "€" is three byte-level tokens: nothing is emitted until it is complete.
  auto ids = enc(*t, "a\xE2\x82\xAC b \xF0\x9F\x98\x80<|end|>");
  StreamDecoder sd(*t, false);
  EXPECT_EQ(sd.push(ids[0]).value(), "a");
  EXPECT_EQ(sd.push(ids[1]).value(), "");
  EXPECT_EQ(sd.push(ids[2]).value(), "");
  EXPECT_EQ(sd.push(ids[3]).value(), "\xE2\x82\xAC");
  check_stream(*t, ids, false);
  check_stream(*t, ids, true);
}

TEST(TokenizerStream, RealTokenizersRandomIds) {
  for (const char* name : {"llama3_1", "llama2", "gemma3"}) {
    std::string path = real_tokenizer(name);
    if (path.empty()) GTEST_SKIP() << "shared tokenizers unavailable";
    auto r = Tokenizer::load(path);
    ASSERT_TRUE(r.ok()) << r.status().message();
    auto& t = *r.value();
    auto ids = t.encode("Hello wörld! 你好 😀👩‍👩‍👧 \n\t  x", EncodeOptions{}).value();
    check_stream(t, ids, false);
    check_stream(t, ids, true);
    std::mt19937 rng(11);
    for (int k = 0; k < 20; ++k) {
      std::vector<int32_t> rnd;
      for (int i = 0; i < 25; ++i) rnd.push_back(int32_t(rng() % (k % 2 ? 300 : t.size())));
      check_stream(t, rnd, k % 3 == 0);
      check_stream(t, rnd, k % 3 == 0, true);
    }
  }
}

TEST(TokenizerStream, LosslessByDefaultCleanUpOnRequest) {
  // Generated text (StreamDecoder, decode_with(..., false)) keeps the spaces a model
  // generated; clean-up on is transformers' clean_up_tokenization.
  std::string path = real_tokenizer("llama3_1");
  if (path.empty()) GTEST_SKIP() << "shared tokenizers unavailable";
  auto t = Tokenizer::load(path).value();
  auto ids = t->encode("a . b ,c n't", EncodeOptions{false, true}).value();
  EXPECT_EQ(t->decode_with(ids, true, false).value(), "a . b ,c n't");
  EXPECT_EQ(t->decode_with(ids, true, true).value(), "a. b,cn't");
  check_stream(*t, ids, true);
  check_stream(*t, ids, true, true);
}
