// tokenizer.json: the input is `<tokenizer.json>\n\x01\n<text>`. The JSON is loaded with
// Tokenizer::from_json; on success the text (arbitrary bytes) is encoded, the ids decoded,
// and the text's bytes reused as ids (in and out of range) for decode and StreamDecoder.
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

using namespace ballast::tokenizer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t sep = in.find("\n\x01\n");
  if (sep == std::string_view::npos) return 0;
  auto tj = nlohmann::json::parse(in.substr(0, sep), nullptr, false);
  if (tj.is_discarded()) return 0;
  std::string_view text = in.substr(sep + 3);
  auto tok = Tokenizer::from_json(tj, nullptr, "fuzz");
  if (!tok.ok()) return 0;
  auto& t = *tok.value();
  for (int mode = 0; mode < 2; ++mode) {
    EncodeOptions eo;
    eo.add_special = mode == 0;
    eo.parse_special = mode == 0;
    auto ids = t.encode(text, eo);
    if (!ids.ok()) continue;
    for (int32_t id : ids.value())
      if (id < 0 || id >= t.size()) __builtin_trap();  // encode yields only known ids
    (void)t.decode(ids.value(), mode == 0);
  }
  // Arbitrary ids, including out-of-range and negative ones: errors, never crashes.
  std::vector<int32_t> raw(text.size() / 2);
  for (size_t i = 0; i < raw.size(); ++i) {
    int16_t v;
    std::memcpy(&v, text.data() + 2 * i, 2);
    raw[i] = v;
  }
  (void)t.decode(raw, false);
  StreamDecoder sd(t, true);
  for (int32_t id : raw)
    if (!sd.push(id).ok()) break;
  (void)sd.finish();
  for (int32_t id = -1; id <= t.size() && id < 4096; ++id) {
    auto s = t.id_to_token(id);
    if (s) (void)t.token_to_id(*s);
    (void)t.is_special(id);
  }
  return 0;
}
