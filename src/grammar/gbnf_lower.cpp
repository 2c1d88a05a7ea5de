// GbnfAst -> Grammar: groups and repetitions become generated rules (x* as R ::= x R | "",
// tail position, so matcher stacks stay flat), classes become byte sets or, beyond ASCII,
// rules of UTF-8 byte-sequence alternatives. Left recursion is refused.
#include <functional>
#include <map>

#include "grammar/gbnf_ast.h"
#include "grammar/grammar.h"

namespace ballast::grammar {

namespace {

class Lowering {
 public:
  explicit Lowering(const GbnfAst& ast) : ast_(ast) {}

  Result<Grammar> run(std::string_view root) {
    for (const auto& n : ast_.order) rule_id(n);
    for (const auto& n : ast_.order) {
      const uint32_t id = ids_.at(n);
      BALLAST_RETURN_IF_ERROR(lower_rule(id, ast_.rules.at(n)));
    }
    for (size_t r = 0; r < bodies_.size(); ++r)
      if (!defined_[r]) return error(ErrorCode::kInvalidArgument, "grammar: rule '" + g_.rule_names[r] + "' is used but not defined");
    auto it = ids_.find(std::string(root));
    if (it == ids_.end()) return error(ErrorCode::kInvalidArgument, "grammar: no '" + std::string(root) + "' rule");
    g_.root = it->second;
    flatten();
    BALLAST_RETURN_IF_ERROR(check_left_recursion());
    return std::move(g_);
  }

 private:
  struct Item {
    bool ref = false;
    uint32_t v = 0;  // rule id or set index
  };
  using Seq = std::vector<Item>;

  uint32_t rule_id(const std::string& name) {
    auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    const uint32_t id = new_rule(name);
    ids_[name] = id;
    return id;
  }
  uint32_t new_rule(const std::string& name) {
    g_.rule_names.push_back(name);
    bodies_.emplace_back();
    defined_.push_back(false);
    return static_cast<uint32_t>(bodies_.size() - 1);
  }
  uint32_t set_index(const ByteSet& s) {
    auto key = s.to_string();
    auto it = set_ids_.find(key);
    if (it != set_ids_.end()) return it->second;
    g_.sets.push_back(s);
    return set_ids_[key] = static_cast<uint32_t>(g_.sets.size() - 1);
  }
  Item byte_item(uint8_t lo, uint8_t hi) {
    ByteSet s;
    for (int b = lo; b <= hi; ++b) s.set(b);
    return {false, set_index(s)};
  }

  Status lower_rule(uint32_t id, const Node& alt) {
    for (const auto& seq : alt.kids) {
      Seq out;
      BALLAST_RETURN_IF_ERROR(lower_into(seq, out, id));
      bodies_[id].push_back(std::move(out));
    }
    defined_[id] = true;
    return Status();
  }

  // A fresh rule for a sub-node (groups, repeated items).
  Result<uint32_t> sub_rule(const Node& n, uint32_t parent) {
    const uint32_t id = new_rule(g_.rule_names[parent] + "_" + std::to_string(bodies_.size()));
    if (n.kind == Node::Kind::kAlt) {
      BALLAST_RETURN_IF_ERROR(lower_rule(id, n));
    } else {
      Seq s;
      BALLAST_RETURN_IF_ERROR(lower_into(n, s, id));
      bodies_[id].push_back(std::move(s));
      defined_[id] = true;
    }
    return id;
  }

  Status lower_into(const Node& n, Seq& out, uint32_t parent) {
    switch (n.kind) {
      case Node::Kind::kSeq:
        for (const auto& k : n.kids) BALLAST_RETURN_IF_ERROR(lower_into(k, out, parent));
        return Status();
      case Node::Kind::kLiteral:
        for (unsigned char c : n.text) out.push_back(byte_item(c, c));
        return Status();
      case Node::Kind::kRef:
        if (!ast_.rules.count(n.text))
          return error(ErrorCode::kInvalidArgument, "grammar: rule '" + n.text + "' is used but not defined");
        out.push_back({true, rule_id(n.text)});
        return Status();
      case Node::Kind::kAlt: {
        if (n.kids.size() == 1) return lower_into(n.kids[0], out, parent);
        BALLAST_ASSIGN_OR_RETURN(uint32_t r, sub_rule(n, parent));
        out.push_back({true, r});
        return Status();
      }
      case Node::Kind::kClass: return lower_class(n, out, parent);
      case Node::Kind::kRepeat: return lower_repeat(n, out, parent);
    }
    return Status();
  }

  Status lower_class(const Node& n, Seq& out, uint32_t parent) {
    if (n.ranges.empty()) return error(ErrorCode::kInvalidArgument, "grammar: empty character class");
    auto seqs = utf8_sequences(n.ranges);
    // Single-byte sequences merge into one set; the rest become alternatives of a rule.
    ByteSet ascii;
    std::vector<ByteRangeSeq> multi;
    for (auto& s : seqs) {
      if (s.size() == 1) for (int b = s[0].first; b <= s[0].second; ++b) ascii.set(b);
      else multi.push_back(s);
    }
    if (multi.empty()) {
      out.push_back({false, set_index(ascii)});
      return Status();
    }
    const uint32_t id = new_rule(g_.rule_names[parent] + "_c" + std::to_string(bodies_.size()));
    if (ascii.any()) bodies_[id].push_back({Item{false, set_index(ascii)}});
    for (auto& s : multi) {
      Seq q;
      for (auto [lo, hi] : s) q.push_back(byte_item(lo, hi));
      bodies_[id].push_back(std::move(q));
    }
    defined_[id] = true;
    out.push_back({true, id});
    return Status();
  }

  Status lower_repeat(const Node& n, Seq& out, uint32_t parent) {
    const Node& x = n.kids[0];
    // The repeated item as one Item (a rule unless it already is one item).
    Seq one;
    BALLAST_RETURN_IF_ERROR(lower_into(x, one, parent));
    Item item;
    if (one.size() == 1) {
      item = one[0];
    } else {
      const uint32_t id = new_rule(g_.rule_names[parent] + "_" + std::to_string(bodies_.size()));
      bodies_[id].push_back(one);
      defined_[id] = true;
      item = {true, id};
    }
    for (int k = 0; k < n.min; ++k) out.push_back(item);
    if (n.max < 0) {
      const uint32_t star = new_rule(g_.rule_names[parent] + "_star" + std::to_string(bodies_.size()));
      bodies_[star].push_back({item, Item{true, star}});
      bodies_[star].push_back({});
      defined_[star] = true;
      out.push_back({true, star});
    } else if (n.max > n.min) {
      // opt_k ::= item opt_{k-1} | "" ; opt_1 ::= item | "".
      uint32_t prev = 0;
      for (int k = 1; k <= n.max - n.min; ++k) {
        const uint32_t id = new_rule(g_.rule_names[parent] + "_opt" + std::to_string(bodies_.size()));
        if (k == 1) bodies_[id].push_back({item});
        else bodies_[id].push_back({item, Item{true, prev}});
        bodies_[id].push_back({});
        defined_[id] = true;
        prev = id;
      }
      out.push_back({true, prev});
    }
    return Status();
  }

  void flatten() {
    g_.rules.assign(bodies_.size(), {});
    for (size_t r = 0; r < bodies_.size(); ++r)
      for (const auto& seq : bodies_[r]) {
        g_.rules[r].push_back(static_cast<uint32_t>(g_.elems.size()));
        for (const auto& it : seq)
          g_.elems.push_back({it.ref ? Element::Kind::kRef : Element::Kind::kBytes, it.v});
        g_.elems.push_back({Element::Kind::kEnd, 0});
      }
  }

  // A rule that can reach itself before consuming a byte would expand forever.
  Status check_left_recursion() {
    const size_t n = bodies_.size();
    std::vector<char> nullable(n, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const auto& seq : bodies_[r]) {
          bool all = true;
          for (const auto& it : seq) all = all && it.ref && nullable[it.v];
          if (all) { nullable[r] = 1; changed = true; break; }
        }
      }
    }
    std::vector<std::vector<uint32_t>> first(n);  // rules reachable at the start
    for (size_t r = 0; r < n; ++r)
      for (const auto& seq : bodies_[r])
        for (const auto& it : seq) {
          if (!it.ref) break;
          first[r].push_back(it.v);
          if (!nullable[it.v]) break;
        }
    std::vector<int> state(n, 0);  // 0 new, 1 on path, 2 done
    std::string bad;
    std::function<bool(uint32_t)> dfs = [&](uint32_t r) {
      state[r] = 1;
      for (uint32_t q : first[r]) {
        if (state[q] == 1) { bad = g_.rule_names[q]; return true; }
        if (state[q] == 0 && dfs(q)) return true;
      }
      state[r] = 2;
      return false;
    };
    for (uint32_t r = 0; r < n; ++r)
      if (state[r] == 0 && dfs(r))
        return error(ErrorCode::kInvalidArgument, "grammar: rule '" + bad + "' is left-recursive");
    return Status();
  }

  const GbnfAst& ast_;
  Grammar g_;
  std::map<std::string, uint32_t> ids_;
  std::map<std::string, uint32_t> set_ids_;
  std::vector<std::vector<Seq>> bodies_;
  std::vector<bool> defined_;
};

}  // namespace

Result<Grammar> parse_gbnf(std::string_view text, std::string_view root) {
  BALLAST_ASSIGN_OR_RETURN(GbnfAst ast, parse_gbnf_ast(text));
  return Lowering(ast).run(root);
}

}  // namespace ballast::grammar
