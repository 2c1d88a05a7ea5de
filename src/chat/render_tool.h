// Hidden `ballast chat-render` subcommand: renders chat templates for conformance tests.
#pragma once

// Reads one JSON request per stdin line:
//   {"template": str, "messages": [...], "add_generation_prompt": bool, "bos_token": str,
//    "eos_token": str, "tools": [...]|null, "now": str|null, "extra_context": {...}}
// and writes one JSON line per request: {"text": str, "content_spans": [[b, e], ...]} or
// {"error": str}. Returns 0 unless stdin/stdout fail.
int ballast_chat_render_main(int argc, char** argv);
