// ChatTemplate: the module boundary. Internal TemplateExceptions (and allocation or JSON
// failures) become kTemplateError statuses here; nothing is thrown past this file.
#include "chat/chat_template.h"

#include <new>

#include "chat/filters.h"
#include "chat/interpreter.h"
#include "chat/parser.h"

namespace ballast::chat {

bool is_reserved_variable(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      "messages", "tools",     "documents", "add_generation_prompt", "bos_token",       "eos_token",
      "range",    "dict",      "namespace", "cycler",                "joiner",          "raise_exception",
      "strftime_now"};
  for (std::string_view r : kReserved)
    if (r == name) return true;
  return false;
}

Result<ChatTemplate> ChatTemplate::parse(std::string source) {
  try {
    ParseOptions po;  // trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False
    std::unique_ptr<Template> t = parse_template(source, po);
    ChatTemplate ct;
    ct.tmpl_ = std::shared_ptr<const Template>(std::move(t));
    ct.source_ = std::make_shared<const std::string>(std::move(source));
    return ct;
  } catch (const TemplateException& e) {
    return error(ErrorCode::kTemplateError, "chat template: " + e.message);
  } catch (const std::bad_alloc&) {
    return error(ErrorCode::kTemplateError, "chat template: out of memory while parsing");
  } catch (const std::exception& e) {
    return error(ErrorCode::kTemplateError, std::string("chat template: ") + e.what());
  }
}

Result<RenderedPrompt> ChatTemplate::render(const nlohmann::ordered_json& messages,
                                            const RenderOptions& opts) const {
  if (!tmpl_) return error(ErrorCode::kTemplateError, "chat template: not parsed");
  if (opts.extra_context.is_object())
    for (auto it = opts.extra_context.begin(); it != opts.extra_context.end(); ++it)
      if (is_reserved_variable(it.key()))
        return error(ErrorCode::kInvalidArgument,
                     "chat template variable '" + it.key() + "' is set by the renderer and cannot be overridden");
  try {
    auto globals = std::make_shared<Scope>();
    GlobalsConfig gc;
    gc.now = opts.now;
    add_builtin_globals(*globals, gc);
    // Same variables transformers passes: messages, tools, documents, add_generation_prompt,
    // the special tokens, then any extra kwargs.
    globals->set("messages", Value::from_json(messages, true));
    globals->set("tools", opts.tools.is_null() ? Value::none() : Value::from_json(opts.tools, opts.taint_tools));
    globals->set("documents", Value::none());
    globals->set("add_generation_prompt", Value::boolean(opts.add_generation_prompt));
    globals->set("bos_token", Value::string(opts.bos_token));
    globals->set("eos_token", Value::string(opts.eos_token));
    if (opts.extra_context.is_object())
      for (auto it = opts.extra_context.begin(); it != opts.extra_context.end(); ++it)
        globals->set(it.key(), Value::from_json(it.value(), opts.taint_extra_context));
    Limits lim;
    lim.max_output_bytes = opts.limits.max_output_bytes;
    lim.max_value_bytes = opts.limits.max_value_bytes;
    lim.max_list_items = opts.limits.max_list_items;
    lim.max_steps = opts.limits.max_steps;
    lim.max_render_ms = opts.limits.max_render_ms;
    lim.max_call_depth = opts.limits.max_call_depth;
    lim.max_eval_depth = opts.limits.max_eval_depth;
    Interpreter in(lim, globals);
    TString out = in.render(*tmpl_);
    RenderedPrompt rp;
    rp.text = std::move(out.s);
    for (const Span& s : out.taint) rp.content_spans.push_back({s.begin, s.end});
    return rp;
  } catch (const TemplateException& e) {
    return error(ErrorCode::kTemplateError, "chat template: " + e.message);
  } catch (const std::bad_alloc&) {
    return error(ErrorCode::kTemplateError, "chat template: out of memory while rendering");
  } catch (const std::exception& e) {
    return error(ErrorCode::kTemplateError, std::string("chat template: ") + e.what());
  }
}

}  // namespace ballast::chat
