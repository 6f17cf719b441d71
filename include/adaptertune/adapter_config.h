#pragma once
/// @file adapter_config.h
/// Configuration of a bottleneck adapter, compatible with AdapterHub's `adapter_config.json`.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace adaptertune {

/// How adapter weights start out.
enum class AdapterInit {
  /// Down and up weights from a normal distribution with std `init_std`, truncated at 2 std; zero
  /// biases. AdapterHub's "houlsby" init (std 1e-2); the paper's code used std 1e-3.
  kHoulsby,
  /// Kaiming-uniform down-projection and an all-zero up-projection, so that a fresh adapter is
  /// exactly the identity. AdapterHub's "mam_adapter".
  kMamAdapter,
  /// BERT's init: normal(0, 0.02) weights, zero biases. AdapterHub's default ("bert").
  kBert,
};

/// A bottleneck adapter: `h + up(act(down(h)))` with down d→m and up m→d, placed on the output
/// of a sublayer's projection (after its dropout, before its residual add and LayerNorm).
///
/// The placement flags follow AdapterHub's `BnConfig`; with `h` the sublayer's projected
/// output, `x` the sublayer's input and `LN` the sublayer's own LayerNorm:
///
///     r  = residual_before_ln ? h : (original_ln_before ? LN(h + x) : h)
///     a  = original_ln_before ? LN(h + x) : h
///     o  = up(act(down(a))) * scaling + r
///     y  = original_ln_after ? LN(o + x) : o
///
/// - `houlsby()`: adapters after attention and after the FFN (mh_adapter and output_adapter),
///   original_ln_before=false, original_ln_after=true, residual_before_ln=true, so
///   `y = LN(h + up(act(down(h))) + x)`, as in Houlsby et al. (2019), Figure 2.
/// - `pfeiffer()`: one adapter after the FFN only, original_ln_before=true,
///   original_ln_after=true, residual_before_ln=true, so
///   `y = LN(h + up(act(down(LN(h + x)))) + x)`, the same LayerNorm applied twice (AdapterHub's
///   `SeqBnConfig`, Pfeiffer et al. 2021).
///
/// Parameters per adapter: 2·m·d + d + m.
struct AdapterConfig {
  /// Insert an adapter after the multi-head attention sublayer (AdapterHub `mh_adapter`).
  bool mh_adapter = true;
  /// Insert an adapter after the feed-forward sublayer (AdapterHub `output_adapter`).
  bool output_adapter = true;
  /// Bottleneck m = hidden_size / reduction_factor, unless adapter_size is set.
  double reduction_factor = 16.0;
  /// Explicit bottleneck size m; overrides reduction_factor when set.
  std::optional<int64_t> adapter_size;
  /// "relu", "gelu", "swish"/"silu" or "tanh".
  std::string non_linearity = "swish";
  bool original_ln_before = false;
  bool original_ln_after = true;
  bool residual_before_ln = true;
  AdapterInit init = AdapterInit::kHoulsby;
  /// Standard deviation for AdapterInit::kHoulsby (truncated at 2 std).
  double init_std = 1e-2;
  /// Dropout on the adapter's output before the skip connection.
  double dropout = 0.0;
  /// Multiplier on the up-projection's output (He et al. 2021); 1 in the Houlsby design.
  double scaling = 1.0;
  /// Encoder layers (0-based, ascending, no repeats) that get no adapter (AdapterDrop, Rücklé et
  /// al. 2021; AdapterHub's `leave_out`): they run as in the frozen base, at training and at
  /// inference, and cost no adapter parameters.
  std::vector<int64_t> leave_out;

  /// Whether encoder layer `layer` carries this adapter (it is not in leave_out).
  bool in_layer(int64_t layer) const;

  /// Houlsby et al. (2019): two adapters per layer, swish, reduction factor 16.
  static AdapterConfig houlsby();
  /// Pfeiffer et al. (2021): one adapter per layer after the FFN, relu, reduction factor 16.
  static AdapterConfig pfeiffer();
  /// A preset by name: "houlsby" or "pfeiffer"; throws Error for any other name.
  static AdapterConfig preset(const std::string& name);

  /// The bottleneck size m for a model of width `hidden_size`: adapter_size, or AdapterHub's
  /// `int(hidden_size // reduction_factor)` (Python's floor division); throws Error when it is
  /// below 1.
  int64_t bottleneck_size(int64_t hidden_size) const;
  /// The reduction factor from which AdapterHub rebuilds a bottleneck of `bottleneck` for width
  /// `hidden_size` (`hidden_size // factor == bottleneck` in Python), for files that must carry
  /// the size as a factor.
  static double reduction_factor_for(int64_t hidden_size, int64_t bottleneck);
  /// Number of adapters per encoder layer (0, 1 or 2).
  int adapters_per_layer() const { return (mh_adapter ? 1 : 0) + (output_adapter ? 1 : 0); }

  /// Checks every value; throws Error naming the bad key.
  void validate() const;

  /// Parses AdapterHub-style JSON (the inner `config` object of `adapter_config.json`, or the
  /// whole file, whose `config` member is then used). Keys AdapterHub writes for features this
  /// library does not implement are accepted only at their neutral value; unknown keys throw.
  static AdapterConfig from_json_string(const std::string& json,
                                        const std::string& source = "<string>");
  static AdapterConfig from_file(const std::string& path);
  /// JSON with AdapterHub's key names (plus `adapter_size` when set).
  std::string to_json_string() const;

  bool operator==(const AdapterConfig& other) const;
  bool operator!=(const AdapterConfig& other) const { return !(*this == other); }
};

}  // namespace adaptertune
