#pragma once
// The page GET / serves: pick a task, type a text (and a pair), see the label and the
// probabilities as bars. Plain HTML and JavaScript in the binary: no build step, nothing fetched
// from elsewhere.

namespace adaptertune::serve {

/// The whole page (HTML with its style and script inline).
extern const char* const kTryPage;

}  // namespace adaptertune::serve
