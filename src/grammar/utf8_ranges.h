// Code-point ranges -> UTF-8 byte-sequence alternatives (each a list of byte ranges).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace ballast::grammar {

using CodeRange = std::pair<char32_t, char32_t>;  // inclusive
using ByteRangeSeq = std::vector<std::pair<uint8_t, uint8_t>>;

// Sorted, merged ranges; negate = complement within the scalar values (no surrogates).
std::vector<CodeRange> normalize_ranges(std::vector<CodeRange> r, bool negate);
// Byte sequences that together match exactly the UTF-8 encodings of the ranges.
std::vector<ByteRangeSeq> utf8_sequences(const std::vector<CodeRange>& ranges);

}  // namespace ballast::grammar
