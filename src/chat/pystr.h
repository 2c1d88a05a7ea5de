// Python str methods on taint-tracked strings. Results are built from slices of the inputs,
// so bytes that survive (e.g. after strip/split/replace) keep their taint.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "chat/value.h"

namespace ballast::chat {

// Python slice semantics: normalized (start, stop, step) and resulting element indices.
std::vector<int64_t> slice_indices(int64_t len, std::optional<int64_t> start,
                                   std::optional<int64_t> stop, std::optional<int64_t> step);

TString str_slice(const TString& s, std::optional<int64_t> start, std::optional<int64_t> stop,
                  std::optional<int64_t> step);
// Code point at index (negative counts from the end); nullopt if out of range.
std::optional<TString> str_index(const TString& s, int64_t index);

// chars: nullopt = Unicode whitespace.
TString str_strip(const TString& s, const std::optional<std::string>& chars, bool left, bool right);
std::vector<TString> str_split(const TString& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<TString> str_rsplit(const TString& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<TString> str_splitlines(const TString& s, bool keepends);
TString str_replace(const TString& s, const std::string& old, const TString& repl, int64_t count);
TString str_join(const TString& sep, const std::vector<TString>& parts);
// Byte-level search converted to code point indices; -1 if absent. start/end in code points.
int64_t str_find(const std::string& s, const std::string& sub, std::optional<int64_t> start,
                 std::optional<int64_t> end, bool reverse);
int64_t str_count(const std::string& s, const std::string& sub);
// Re-applies a case mapping; taint is kept per byte when the length is unchanged,
// otherwise any taint makes the whole result tainted (conservative).
TString str_map_case(const TString& s, const std::string& mapped);
TString str_pad(const TString& s, int64_t width, const std::string& fill, char align);

// HTML escaping as markupsafe.escape does it.
TString html_escape(const TString& s);

}  // namespace ballast::chat
