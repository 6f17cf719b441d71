// Fuzz target for the configuration files a downloaded model or pack brings: a Hugging Face
// `config.json` (BertConfig, and the head it describes), an AdapterHub `adapter_config.json`'s
// config (AdapterConfig) and `adapter_fusion_config.json` (FusionConfig). Every input goes to every
// parser. Any exception other than adaptertune::Error, any crash and any sanitizer report is a
// bug, and so is a config that parses but whose written form does not read back as itself.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "adaptertune/adapter_config.h"
#include "adaptertune/bert_config.h"
#include "adaptertune/error.h"
#include "adaptertune/fusion_config.h"
#include "adaptertune/head_config.h"

namespace {

// Parses `text`; when that succeeds, what the config writes must parse and write the same text.
template <typename Config, typename Parse>
void check_round_trip(const std::string& text, const char* what, Parse parse) {
  std::string written;
  try {
    written = parse(text).to_json_string();
  } catch (const adaptertune::Error&) {
    return;
  }
  try {
    const std::string again = parse(written).to_json_string();
    if (again == written) return;
    std::fprintf(stderr, "%s: written\n%s\nreads back as\n%s\n", what, written.c_str(),
                 again.c_str());
  } catch (const adaptertune::Error& e) {
    std::fprintf(stderr, "%s: written\n%s\ndoes not read back: %s\n", what, written.c_str(),
                 e.what());
  }
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  check_round_trip<adaptertune::BertConfig>(text, "config.json", [](const std::string& json) {
    return adaptertune::BertConfig::from_json_string(json, "fuzz/config.json");
  });
  check_round_trip<adaptertune::HeadConfig>(text, "head", [](const std::string& json) {
    return adaptertune::HeadConfig::from_model_config(json, "fuzz/config.json");
  });
  check_round_trip<adaptertune::AdapterConfig>(text, "adapter config", [](const std::string& json) {
    return adaptertune::AdapterConfig::from_json_string(json, "fuzz/adapter_config.json");
  });
  check_round_trip<adaptertune::FusionConfig>(text, "fusion config", [](const std::string& json) {
    return adaptertune::FusionConfig::from_json_string(json, "fuzz/adapter_fusion_config.json");
  });
  return 0;
}
