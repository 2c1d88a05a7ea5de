// Tokenizer::from_gguf: builds the pipeline from GGUF tokenizer.ggml.* metadata so that
// tokenization matches llama.cpp: "llama" (SPM score merges), "gpt2" (byte-level BPE with
// llama.cpp's regexes per tokenizer.ggml.pre), "bert" (WPM), "t5" (Unigram).
#include "io/gguf.h"
#include "tokenizer/models/bpe.h"
#include "tokenizer/models/llama_cpp.h"
#include "tokenizer/models/unigram.h"
#include "tokenizer/pipeline.h"
#include "tokenizer/precompiled.h"

namespace ballast::tokenizer {

std::unique_ptr<Normalizer> make_precompiled_normalizer(std::shared_ptr<PrecompiledCharsMap> map);

namespace {

enum TokenType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

const char* const kGpt2Re = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char* const kLlama3Re =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2Re =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kGpt4oRe =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'["
    "vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}"
    "\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kTekkenRe =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?["
    "\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct PreInfo {
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool add_bos = false;
};

// llama.cpp's pre-tokenizer table (llama-vocab.cpp), keyed by tokenizer.ggml.pre.
PreInfo pre_info(const std::string& pre) {
  auto is = [&](std::initializer_list<const char*> names) {
    for (auto n : names)
      if (pre == n) return true;
    return false;
  };
  if (is({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}))
    return {{kLlama3Re}, true, true};
  if (is({"dbrx", "smaug-bpe"})) return {{kLlama3Re}, false, false};
  if (is({"chatglm-bpe"})) return {{kLlama3Re}, false, false};
  if (pre == "deepseek-llm")
    return {{"[\r\n]",
             "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{3B9}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
             "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"},
            false, true};
  if (is({"deepseek-v3", "hunyuan-dense"}))
    return {{"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
             "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
             "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
            false, true};
  if (pre == "deepseek-coder")
    return {{"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}, false, true};
  if (pre == "falcon") return {{"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2Re, "[0-9][0-9][0-9]"}, false, false};
  if (is({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"}))
    return {{"\\p{N}", kGpt2Re}, false, false};
  if (is({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code",
          "roberta-bpe", "mpt", "olmo", "jais", "trillion", "a.x-4.0"}))
    return {{kGpt2Re}, false, false};
  if (is({"qwen2", "deepseek-r1-qwen", "megrez", "stablelm2", "hunyuan"})) return {{kQwen2Re}, false, false};
  if (is({"poro-chat", "bloom", "gpt3-finnish"})) return {{" ?[^(\\s|.,!?…。，、।۔،)]+"}, false, false};
  if (pre == "viking") return {{" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"}, false, false};
  if (pre == "tekken") return {{kTekkenRe}, false, false};
  if (is({"gpt-4o", "llama4"})) return {{kGpt4oRe}, false, false};
  if (pre == "chameleon")
    return {{"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
             "[\\p{P}!-/:-@\\[-`{-~]", kGpt2Re},
            false, false};
  // "default" and unknown names: llama.cpp's default BPE split.
  return {{"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2Re, "\\p{N}+", "[0-9][0-9][0-9]"}, false, false};
}

std::optional<int32_t> id_key(const io::GgufFile& g, const char* key, int32_t n) {
  auto v = g.get_int(key);
  if (!v || *v < 0 || *v >= n) return std::nullopt;
  return int32_t(*v);
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const io::GgufFile& g) {
  const std::string src = g.path();
  auto model_name = g.get_string("tokenizer.ggml.model");
  if (!model_name) return error(ErrorCode::kNotFound, src + ": no tokenizer.ggml.model (the GGUF has no vocabulary)");
  const auto* tokens = g.get_strings("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty()) return error(ErrorCode::kFormatError, src + ": tokenizer.ggml.tokens missing or empty");
  const int32_t n = int32_t(tokens->size());
  const auto* types = g.get_ints("tokenizer.ggml.token_type");
  const auto* scores_d = g.get_floats("tokenizer.ggml.scores");
  if (types && (int32_t)types->size() != n)
    return error(ErrorCode::kFormatError, src + ": tokenizer.ggml.token_type has " + std::to_string(types->size()) +
                                              " entries for " + std::to_string(n) + " tokens");
  std::vector<float> scores;
  if (scores_d) scores.assign(scores_d->begin(), scores_d->end());
  std::string pre = g.get_string("tokenizer.ggml.pre").value_or("default");

  auto tok = std::make_unique<PipelineTokenizer>();
  tok->options.match_mode = AddedTokenMatcher::Mode::kLlamaCpp;
  TokenizerSettings& st = tok->settings_;
  st.source = src;
  st.from_gguf = true;
  st.bos_id = id_key(g, "tokenizer.ggml.bos_token_id", n);
  st.eos_id = id_key(g, "tokenizer.ggml.eos_token_id", n);
  st.unk_id = id_key(g, "tokenizer.ggml.unknown_token_id", n);
  st.pad_id = id_key(g, "tokenizer.ggml.padding_token_id", n);
  for (const char* k : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (auto id = id_key(g, k, n)) st.extra_eos_ids.push_back(*id);
  auto name_of = [&](std::optional<int32_t> id) -> std::optional<std::string> {
    if (!id) return std::nullopt;
    return (*tokens)[*id];
  };
  st.bos_token = name_of(st.bos_id);
  st.eos_token = name_of(st.eos_id);
  st.unk_token = name_of(st.unk_id);
  st.pad_token = name_of(st.pad_id);
  if (auto t = g.get_string("tokenizer.chat_template")) st.chat_template = t;
  for (auto& [k, v] : g.metadata()) {
    const std::string prefix = "tokenizer.chat_template.";
    if (k.rfind(prefix, 0) == 0 && v.type == io::GgufType::kString) st.named_chat_templates[k.substr(prefix.size())] = v.s;
  }
  int32_t unk = st.unk_id.value_or(-1);
  bool add_bos = false, add_eos = false;
  std::vector<int32_t> prefix_ids, suffix_ids;

  if (*model_name == "llama") {
    bool space_prefix = g.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
    add_bos = true;
    tok->options.spm_space_prefix = space_prefix;
    tok->normalizer = make_replace_normalizer(" ", "\xE2\x96\x81");
    tok->model = std::make_unique<LlamaSpmModel>(*tokens, scores, unk);
    std::vector<std::unique_ptr<Decoder>> dec;
    dec.push_back(make_replace_decoder("\xE2\x96\x81", " "));
    dec.push_back(make_byte_fallback_decoder());
    dec.push_back(make_fuse_decoder());
    if (space_prefix) dec.push_back(make_strip_decoder(" ", 1, 0));
    tok->decoder = make_sequence_decoder(std::move(dec));
  } else if (*model_name == "gpt2") {
    PreInfo info = pre_info(pre);
    add_bos = info.add_bos;
    BpeOptions o;
    o.ignore_merges = info.ignore_merges;
    auto bpe = std::make_unique<BpeModel>(o);
    const auto* merges = g.get_strings("tokenizer.ggml.merges");
    bpe->reserve(n, merges ? merges->size() : 0);
    for (int32_t i = n; i-- > 0;) bpe->add_token((*tokens)[i], i);
    if (merges) {
      for (auto& m : *merges) {
        size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) return error(ErrorCode::kFormatError, src + ": tokenizer.ggml.merges entry \"" + m + "\" is not \"a b\"");
        (void)bpe->add_merge(std::string_view(m).substr(0, sp), std::string_view(m).substr(sp + 1));
      }
    }
    bpe->finalize();
    tok->model = std::move(bpe);
    auto p = make_regex_byte_level_pre_tokenizer(info.regexes);
    if (!p.ok()) return Status(p.status().code(), src + ": pre-tokenizer \"" + pre + "\": " + p.status().message());
    tok->pre_tokenizer = std::move(p.value());
    tok->decoder = make_byte_level_decoder();
  } else if (*model_name == "bert") {
    add_bos = add_eos = true;
    tok->model = std::make_unique<LlamaWpmModel>(*tokens, scores, unk);
    if (auto cls = id_key(g, "tokenizer.ggml.cls_token_id", n)) st.bos_id = cls, st.bos_token = name_of(cls);
    if (auto sep = id_key(g, "tokenizer.ggml.seperator_token_id", n)) st.eos_id = sep, st.eos_token = name_of(sep);
    std::vector<std::unique_ptr<Decoder>> dec;
    dec.push_back(make_replace_decoder("\xE2\x96\x81", " "));
    dec.push_back(make_fuse_decoder());
    dec.push_back(make_strip_decoder(" ", 1, 0));
    tok->decoder = make_sequence_decoder(std::move(dec));
  } else if (*model_name == "t5") {
    add_eos = true;
    std::vector<std::pair<std::string, double>> pieces;
    pieces.reserve(n);
    for (int32_t i = 0; i < n; ++i) pieces.emplace_back((*tokens)[i], i < (int32_t)scores.size() ? scores[i] : 0.0);
    std::optional<int32_t> unk_opt;
    if (unk >= 0) unk_opt = unk;
    tok->model = std::make_unique<UnigramModel>(std::move(pieces), unk_opt, false);
    std::vector<std::unique_ptr<Normalizer>> norm;
    if (const auto* cm = g.get_ints("tokenizer.ggml.precompiled_charsmap")) {
      std::string blob;
      for (auto b : *cm) blob.push_back(char(b));
      auto map = PrecompiledCharsMap::from_bytes(blob);
      if (map.ok()) norm.push_back(make_precompiled_normalizer(map.value()));
    }
    norm.push_back(make_replace_normalizer(" ", "\xE2\x96\x81"));
    norm.push_back(make_prepend_normalizer("\xE2\x96\x81"));
    tok->normalizer = make_sequence_normalizer(std::move(norm));
    std::vector<std::unique_ptr<Decoder>> dec;
    dec.push_back(make_replace_decoder("\xE2\x96\x81", " "));
    dec.push_back(make_fuse_decoder());
    dec.push_back(make_strip_decoder(" ", 1, 0));
    tok->decoder = make_sequence_decoder(std::move(dec));
  } else {
    return error(ErrorCode::kUnsupported, src + ": tokenizer.ggml.model \"" + *model_name + "\" is not supported");
  }

  if (auto v = g.get_bool("tokenizer.ggml.add_bos_token")) add_bos = *v;
  if (auto v = g.get_bool("tokenizer.ggml.add_eos_token")) add_eos = *v;
  st.add_bos_token = add_bos;
  st.add_eos_token = add_eos;
  if (add_bos && st.bos_id) prefix_ids.push_back(*st.bos_id);
  if (add_eos && st.eos_id) suffix_ids.push_back(*st.eos_id);
  tok->post_processor = make_bos_eos_post_processor(prefix_ids, suffix_ids);

  // Control / unknown tokens are special (matched only when parsing specials);
  // user-defined tokens are always matched, as llama.cpp does.
  if (types) {
    for (int32_t i = 0; i < n; ++i) {
      int64_t t = (*types)[i];
      if (t != kControl && t != kUserDefined && t != kUnknown) continue;
      AddedToken a;
      a.id = i;
      a.content = (*tokens)[i];
      a.special = t != kUserDefined;
      tok->add_token(a);
    }
  }
  BALLAST_RETURN_IF_ERROR(tok->finalize());
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

}  // namespace ballast::tokenizer
