// API key check: "Authorization: Bearer <key>", compared in constant time.
#pragma once
#include <string>
#include <string_view>

namespace ballast::server {

// Equal strings in time that depends only on the lengths, never on where they differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// True when no key is configured or the header carries it. header may be null.
bool authorized(const std::string& api_key, const std::string* authorization_header);

}  // namespace ballast::server
