#pragma once
/// @file fusion_config.h
/// Configuration of an AdapterFusion layer, compatible with AdapterHub's
/// `adapter_fusion_config.json`.

#include <optional>
#include <string>

namespace adaptertune {

/// AdapterFusion (Pfeiffer et al., 2021): at each adapter site, attention over the outputs of
/// several trained adapters. With `q` the sublayer's output as the fused adapters see it, `u_i`
/// adapter i's up-projection (its contribution before the skip connection) and `r` the adapters'
/// residual, AdapterHub's `BertFusion` computes
///
///     s_i = query(q) · key(u_i)                  (over the adapters i, per token)
///     c   = Σ_i softmax(dropout(s))_i · value(u_i)
///     o   = c + r
///
/// and the sublayer ends as the last fused adapter would (its residual add and LayerNorm). The
/// flags are AdapterHub's, with its meaning; `dynamic()` (query, key and value, the value
/// initialised near the identity and pulled towards it by a regularisation term) is the default.
struct FusionConfig {
  /// A learned key projection (d→d, with bias); otherwise the adapters' outputs are the keys.
  bool key = true;
  /// A learned query projection (d→d, with bias); otherwise the sublayer's output is the query.
  bool query = true;
  /// A learned value projection (d→d, no bias); otherwise the adapters' outputs are the values.
  bool value = true;
  /// The query is the sublayer's output before the LayerNorm a Pfeiffer-style adapter applies.
  bool query_before_ln = false;
  /// Adds `0.01 · ||I − W_value||²` per fusion layer to the training loss (no-op without
  /// `value`, as in AdapterHub).
  bool regularization = true;
  /// The residual is added to every adapter's output before the attention, not after it.
  bool residual_before = false;
  /// AdapterHub's annealed softmax temperature (50 → 1 over 49,000 forward passes). It changes
  /// the layer on every forward pass, evaluation included, so it is not implemented: true is an
  /// Error.
  bool temperature = false;
  /// The value projection applies to each adapter's output before the weighted sum; otherwise
  /// to the sum.
  bool value_before_softmax = true;
  /// The value projection starts at the identity (1 on the diagonal, 1e-6 elsewhere); otherwise
  /// BERT's init, normal(0, 0.02).
  bool value_initialized = true;
  /// Dropout on the attention scores; unset: the model's `attention_probs_dropout_prob`.
  std::optional<double> dropout_prob;

  /// AdapterHub's "dynamic" fusion (the default).
  static FusionConfig dynamic();
  /// AdapterHub's "static" fusion: query and key only, no value projection, no regularisation.
  static FusionConfig static_fusion();
  /// A preset by name: "dynamic" or "static"; throws Error for any other name.
  static FusionConfig preset(const std::string& name);

  /// Checks the values; throws Error naming the bad key.
  void validate() const;

  /// Parses AdapterHub's JSON: the whole `adapter_fusion_config.json` (its `config` member is
  /// used) or the inner object. Unknown keys are an Error.
  static FusionConfig from_json_string(const std::string& json,
                                       const std::string& source = "<string>");
  /// JSON with AdapterHub's key names.
  std::string to_json_string() const;

  bool operator==(const FusionConfig& other) const;
  bool operator!=(const FusionConfig& other) const { return !(*this == other); }
};

}  // namespace adaptertune
