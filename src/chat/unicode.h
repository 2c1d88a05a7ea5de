// UTF-8 helpers with Python str semantics (code-point indexing, Unicode whitespace and
// case mapping), so string filters and methods match CPython byte for byte.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ballast::chat {

// Decodes one code point at s[pos]; advances pos. Invalid bytes decode as U+FFFD (1 byte).
char32_t utf8_next(std::string_view s, size_t& pos);
void utf8_append(std::string& out, char32_t cp);
size_t utf8_length(std::string_view s);
// Byte offsets of every code point start, plus s.size() at the end.
std::vector<size_t> utf8_offsets(std::string_view s);

bool py_isspace(char32_t c);       // str.isspace / str.split() whitespace
bool py_islinebreak(char32_t c);   // str.splitlines boundaries
bool py_isprintable(char32_t c);   // repr() keeps these verbatim
bool py_isalpha(char32_t c);
bool py_isdigit(char32_t c);
bool py_isalnum(char32_t c);
bool py_iscased(char32_t c);
bool py_islower_cp(char32_t c);
bool py_isupper_cp(char32_t c);
char32_t py_toupper(char32_t c);
char32_t py_tolower(char32_t c);
char32_t py_totitle(char32_t c);

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);       // str.title()
std::string py_capitalize(std::string_view s);  // str.capitalize()
std::string py_swapcase(std::string_view s);

}  // namespace ballast::chat
