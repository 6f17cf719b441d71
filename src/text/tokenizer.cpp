#include "adaptertune/text/tokenizer.h"

#include "adaptertune/error.h"

namespace adaptertune {

int64_t truncate_longest_first(std::vector<std::string>& a, std::vector<std::string>* b,
                               int64_t budget) {
  int64_t removed = 0;
  auto total = [&] { return static_cast<int64_t>(a.size() + (b ? b->size() : 0)); };
  while (total() > budget) {
    // As Hugging Face's "longest_first": the first sequence loses a token only when it is
    // strictly longer; on a tie the second does.
    if (b == nullptr || a.size() > b->size()) {
      a.pop_back();
    } else {
      b->pop_back();
    }
    ++removed;
  }
  return removed;
}

Encoding Tokenizer::encode(const std::string& text, const std::optional<std::string>& text_pair,
                           std::optional<int64_t> max_length) const {
  std::vector<std::string> a = tokenize(text);
  std::vector<std::string> b;
  if (text_pair) b = tokenize(*text_pair);
  const int64_t specials = text_pair ? 3 : 2;
  Encoding out;
  if (max_length) {
    if (*max_length < specials) {
      throw Error("max_length " + std::to_string(*max_length) + " cannot hold the " +
                  std::to_string(specials) + " special tokens of " +
                  (text_pair ? "a pair" : "a sentence"));
    }
    out.truncated_tokens =
        truncate_longest_first(a, text_pair ? &b : nullptr, *max_length - specials);
  }
  const std::string cls = id_to_token(cls_id());
  const std::string sep = id_to_token(sep_id());
  auto push = [&](const std::string& token, int64_t type) {
    out.tokens.push_back(token);
    out.input_ids.push_back(token_to_id(token));
    out.token_type_ids.push_back(type);
  };
  push(cls, 0);
  for (const auto& t : a) push(t, 0);
  push(sep, 0);
  if (text_pair) {
    for (const auto& t : b) push(t, 1);
    push(sep, 1);
  }
  out.attention_mask.assign(out.input_ids.size(), 1);
  return out;
}

}  // namespace adaptertune
