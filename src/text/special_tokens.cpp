#include "special_tokens.h"

#include <algorithm>

namespace adaptertune::detail {

void split_on_special_tokens(const std::string& text, const std::vector<std::string>& specials,
                             const std::function<void(const std::string&)>& on_text,
                             const std::function<void(const std::string&)>& on_special) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t best = std::string::npos;
    const std::string* found = nullptr;
    for (const auto& token : specials) {
      const size_t at = text.find(token, start);
      if (at != std::string::npos && (best == std::string::npos || at < best)) {
        best = at;
        found = &token;
      }
    }
    const size_t end = found ? best : text.size();
    on_text(text.substr(start, end - start));
    if (!found) break;
    on_special(*found);
    start = best + found->size();
  }
}

void sort_longest_first(std::vector<std::string>& specials) {
  std::stable_sort(specials.begin(), specials.end(),
                   [](const std::string& x, const std::string& y) { return x.size() > y.size(); });
}

}  // namespace adaptertune::detail
