// UTF-8 and Unicode helpers shared by the tokenizer pipeline: decoding, lossy repair
// (Rust's from_utf8_lossy rules), character classes and the GPT-2 byte<->char table.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace ballast::tokenizer {

// Decodes one code point at s[i]; returns its length (1..4). Invalid input yields
// cp = 0xFFFD and the length of the maximal invalid subpart (>= 1).
int utf8_decode(std::string_view s, size_t i, char32_t* cp);
// Length of a valid UTF-8 sequence starting at s[i] (assumes valid input).
inline int utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }
void utf8_append(std::string& out, char32_t cp);
std::string utf8_encode(char32_t cp);
bool utf8_valid(std::string_view s);
// Replaces every maximal invalid subpart with U+FFFD (same output as Rust's
// String::from_utf8_lossy and Python's bytes.decode(errors="replace")).
std::string utf8_lossy(std::string_view s);
// Number of bytes at the end of s that form an incomplete (but so far valid) sequence.
size_t utf8_incomplete_tail(std::string_view s);

// Rust char::is_whitespace (Unicode White_Space).
bool is_whitespace(char32_t c);
bool is_alphanumeric(char32_t c);  // Rust char::is_alphanumeric (L* | N*)
bool is_control(char32_t c);       // Cc
bool is_punctuation(char32_t c);   // P*
bool is_symbol(char32_t c);        // S*
bool is_mark(char32_t c);          // M*
bool is_mn(char32_t c);            // Mn
bool is_letter(char32_t c);
bool is_number(char32_t c);
bool is_cjk(char32_t c);  // BERT's "Chinese character" ranges
char32_t to_lower(char32_t c);

// GPT-2 byte-level alphabet: every byte maps to one printable code point.
const std::string& byte_to_char_utf8(uint8_t b);
// Reverse map; returns -1 when cp is not in the alphabet.
int char_to_byte(char32_t cp);

}  // namespace ballast::tokenizer
