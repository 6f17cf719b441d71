#include "adaptertune/adapter_config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "adaptertune/activation_name.h"
#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "adaptertune/io/atomic_file.h"
#include "json_util.h"

namespace adaptertune {
namespace {

// Python's float floor division `a // b` for positive operands (CPython's float_divmod), which
// AdapterHub uses for the bottleneck, `int(hidden_size // reduction_factor)`. It differs from
// floor(a / b) when a / b rounds up to a whole number: 64 // 6.4 is 9.0 while 64 / 6.4 is 10.0.
double python_floor_division(double a, double b) {
  const double mod = std::fmod(a, b);
  const double div = (a - mod) / b;
  double floor_div = std::floor(div);
  if (div - floor_div > 0.5) floor_div += 1.0;
  return floor_div;
}

const char* init_name(AdapterInit init) {
  switch (init) {
    case AdapterInit::kHoulsby:
      return "houlsby";
    case AdapterInit::kMamAdapter:
      return "mam_adapter";
    case AdapterInit::kBert:
      return "bert";
  }
  return "houlsby";
}

AdapterInit parse_init(const std::string& name, const std::string& source) {
  if (name == "houlsby") return AdapterInit::kHoulsby;
  if (name == "mam_adapter") return AdapterInit::kMamAdapter;
  if (name == "bert") return AdapterInit::kBert;
  throw Error(source + ": 'init_weights' must be \"houlsby\", \"mam_adapter\" or \"bert\", got \"" +
              name + "\"");
}

// AdapterHub keys for features this library does not implement, with the value that switches the
// feature off. A file that uses them at that value loads; one that turns them on is refused
// rather than silently trained as something else.
void check_neutral_keys(detail::JsonObjectReader& reader) {
  const std::pair<const char*, detail::Json> neutral[] = {
      {"ln_before", false},     {"ln_after", false},       {"adapter_residual_before_ln", false},
      {"phm_layer", false},     {"is_parallel", false},    {"use_gating", false},
      {"cross_adapter", false}, {"stochastic_depth", 0.0}, {"inv_adapter", nullptr},
  };
  for (const auto& [key, off] : neutral) {
    const detail::Json* value = reader.take(key);
    if (value == nullptr || *value == off ||
        (value->is_number() && off.is_number() && value->get<double>() == off.get<double>())) {
      continue;
    }
    throw Error(reader.source() + ": '" + key + "' = " + json_text(*value) +
                " is not supported (only " + json_text(off) + ")");
  }
  // Sub-options of phm_layer / inv_adapter; they mean nothing while those are off.
  reader.ignore({"phm_dim", "factorized_phm_W", "shared_W_phm", "shared_phm_rule",
                 "factorized_phm_rule", "phm_c_init", "phm_init_range", "learn_phm",
                 "hypercomplex_nonlinearity", "phm_rank", "phm_bias",
                 "inv_adapter_reduction_factor", "init_weights_seed"});
}

}  // namespace

AdapterConfig AdapterConfig::houlsby() {
  return AdapterConfig{};
}

AdapterConfig AdapterConfig::pfeiffer() {
  AdapterConfig config;
  config.mh_adapter = false;
  config.output_adapter = true;
  config.non_linearity = "relu";
  config.original_ln_before = true;
  config.original_ln_after = true;
  config.residual_before_ln = true;
  return config;
}

AdapterConfig AdapterConfig::preset(const std::string& name) {
  if (name == "houlsby") return houlsby();
  if (name == "pfeiffer") return pfeiffer();
  throw Error("unknown adapter preset \"" + name + "\" (expected \"houlsby\" or \"pfeiffer\")");
}

int64_t AdapterConfig::bottleneck_size(int64_t hidden_size) const {
  const double size_as_double =
      adapter_size ? static_cast<double>(*adapter_size)
                   : python_floor_division(static_cast<double>(hidden_size), reduction_factor);
  // Converting a double beyond int64's range is undefined behaviour; no memory holds such a size.
  if (size_as_double >= 0x1p62) {
    throw Error("AdapterConfig: bottleneck size for hidden_size " + std::to_string(hidden_size) +
                " is " + format_number(size_as_double) + " (reduction_factor " +
                format_number(reduction_factor) + "); no memory holds it");
  }
  const auto size = static_cast<int64_t>(size_as_double);
  if (size < 1) {
    throw Error("AdapterConfig: bottleneck size for hidden_size " + std::to_string(hidden_size) +
                " is " + std::to_string(size) + "; it must be at least 1");
  }
  return size;
}

double AdapterConfig::reduction_factor_for(int64_t hidden_size, int64_t bottleneck) {
  if (hidden_size < 1 || bottleneck < 1) {
    throw Error("AdapterConfig: no reduction factor for hidden size " +
                std::to_string(hidden_size) + " and bottleneck " + std::to_string(bottleneck));
  }
  const auto hidden = static_cast<double>(hidden_size);
  double factor = hidden / static_cast<double>(bottleneck);
  // hidden / m can land one ulp too high for `//` (64 / 10 = 6.4, but 64 // 6.4 = 9.0): step
  // down until the division gives m back. One step suffices for every width tried up to 5120.
  for (int step = 0;
       step < 8 && python_floor_division(hidden, factor) != static_cast<double>(bottleneck);
       ++step) {
    factor = std::nextafter(factor, 0.0);
  }
  return factor;
}

void AdapterConfig::validate() const {
  if (!mh_adapter && !output_adapter) {
    throw Error("AdapterConfig: at least one of 'mh_adapter' and 'output_adapter' must be true");
  }
  if (!(reduction_factor > 0) || !std::isfinite(reduction_factor)) {
    throw Error("AdapterConfig: 'reduction_factor' must be positive, got " +
                format_number(reduction_factor));
  }
  if (adapter_size && *adapter_size < 1) {
    throw Error("AdapterConfig: 'adapter_size' must be at least 1, got " +
                std::to_string(*adapter_size));
  }
  parse_activation(non_linearity, "AdapterConfig: 'non_linearity'");
  // The adapters' weights are float32: a standard deviation or a scale beyond float's range
  // cannot be applied to them.
  constexpr double kFloatMax = std::numeric_limits<float>::max();
  if (!(init_std > 0 && init_std <= kFloatMax)) {
    throw Error("AdapterConfig: 'init_std' must be positive and at most " +
                format_number(kFloatMax) + ", got " + format_number(init_std));
  }
  if (!(dropout >= 0 && dropout < 1)) {
    throw Error("AdapterConfig: 'dropout' must be in [0, 1), got " + format_number(dropout));
  }
  if (!(std::fabs(scaling) <= kFloatMax)) {
    throw Error("AdapterConfig: 'scaling' must be finite and at most " + format_number(kFloatMax) +
                " in size, got " + format_number(scaling));
  }
  for (size_t i = 0; i < leave_out.size(); ++i) {
    if (leave_out[i] < 0 || (i > 0 && leave_out[i] <= leave_out[i - 1])) {
      throw Error(
          "AdapterConfig: 'leave_out' must list layer indices >= 0 in ascending order "
          "without repeats");
    }
  }
}

bool AdapterConfig::in_layer(int64_t layer) const {
  return !std::binary_search(leave_out.begin(), leave_out.end(), layer);
}

AdapterConfig AdapterConfig::from_json_string(const std::string& json, const std::string& source) {
  const detail::Json document = detail::adapterhub_settings(detail::parse_json(json, source));
  detail::JsonObjectReader reader(document, source);
  AdapterConfig config;
  reader.read("mh_adapter", config.mh_adapter);
  reader.read("output_adapter", config.output_adapter);
  if (const detail::Json* rf = reader.take("reduction_factor")) {
    if (!rf->is_number())
      reader.fail("reduction_factor", "a number (per-layer maps are not supported)");
    config.reduction_factor = rf->get<double>();
  }
  if (const detail::Json* size = reader.take("adapter_size"); size && !size->is_null()) {
    const std::optional<int64_t> value = detail::integer_value(*size);
    if (!value) reader.fail("adapter_size", "an integer");
    config.adapter_size = *value;
  }
  reader.read("non_linearity", config.non_linearity);
  reader.read("original_ln_before", config.original_ln_before);
  reader.read("original_ln_after", config.original_ln_after);
  if (const detail::Json* r = reader.take("residual_before_ln")) {
    if (!r->is_boolean())
      reader.fail("residual_before_ln", "true or false (\"post_add\" is not supported)");
    config.residual_before_ln = r->get<bool>();
  }
  if (const detail::Json* init = reader.take("init_weights")) {
    if (!init->is_string()) reader.fail("init_weights", "a string");
    config.init = parse_init(init->get<std::string>(), source);
  }
  reader.read("init_std", config.init_std);
  reader.read("dropout", config.dropout);
  if (const detail::Json* scaling = reader.take("scaling")) {
    if (!scaling->is_number())
      reader.fail("scaling", "a number (\"learned\"/\"channel\" are not supported)");
    config.scaling = scaling->get<double>();
  }
  if (const detail::Json* arch = reader.take("architecture")) {
    if (!(arch->is_null() || *arch == "bottleneck")) reader.fail("architecture", "\"bottleneck\"");
  }
  if (const detail::Json* layers = reader.take("leave_out"); layers && !layers->is_null()) {
    if (!layers->is_array()) reader.fail("leave_out", "a list of layer indices");
    for (const auto& layer : *layers) {
      const std::optional<int64_t> index = detail::integer_value(layer);
      if (!index) reader.fail("leave_out", "a list of layer indices");
      config.leave_out.push_back(*index);
    }
    // AdapterHub takes the layers in any order; the set is what matters.
    std::sort(config.leave_out.begin(), config.leave_out.end());
  }
  check_neutral_keys(reader);
  reader.finish();
  try {
    config.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return config;
}

AdapterConfig AdapterConfig::from_file(const std::string& path) {
  return from_json_string(read_file(path), path);
}

std::string AdapterConfig::to_json_string() const {
  detail::Json j = {
      {"architecture", "bottleneck"},
      {"mh_adapter", mh_adapter},
      {"output_adapter", output_adapter},
      {"reduction_factor", reduction_factor},
      {"non_linearity", non_linearity},
      {"original_ln_before", original_ln_before},
      {"original_ln_after", original_ln_after},
      {"residual_before_ln", residual_before_ln},
      {"adapter_residual_before_ln", false},
      {"ln_before", false},
      {"ln_after", false},
      {"init_weights", init_name(init)},
      {"init_std", init_std},
      {"dropout", dropout},
      {"scaling", scaling},
      {"is_parallel", false},
      {"use_gating", false},
      {"phm_layer", false},
      {"leave_out", leave_out},
  };
  if (adapter_size) j["adapter_size"] = *adapter_size;
  return json_text(j, 2) + "\n";
}

bool AdapterConfig::operator==(const AdapterConfig& o) const {
  return mh_adapter == o.mh_adapter && output_adapter == o.output_adapter &&
         reduction_factor == o.reduction_factor && adapter_size == o.adapter_size &&
         non_linearity == o.non_linearity && original_ln_before == o.original_ln_before &&
         original_ln_after == o.original_ln_after && residual_before_ln == o.residual_before_ln &&
         init == o.init && init_std == o.init_std && dropout == o.dropout && scaling == o.scaling &&
         leave_out == o.leave_out;
}

}  // namespace adaptertune
