// Classify lines of stdin with a base model and an adapter pack (its head included), through the
// public API.
//
//   classify MODEL_DIR ADAPTER_PACK_DIR < sentences.txt
// Prints "label<TAB>probability<TAB>sentence" per line.

#include <iostream>
#include <string>

#include <torch/torch.h>

#include <adaptertune/adaptertune.h>

namespace atune = adaptertune;

int main(int argc, char** argv) {
  atune::tune_cpu_allocator();  // as adapter_demo.cpp says
  if (argc != 3) {
    std::cerr << "usage: classify MODEL_DIR ADAPTER_PACK_DIR < sentences.txt\n";
    return 2;
  }
  try {
    const std::string model_dir = argv[1], pack = argv[2];
    atune::AdapterPackInfo info = atune::read_adapter_pack_info(pack);
    if (!info.head || info.head->problem_type != atune::ProblemType::kSingleLabelClassification) {
      throw atune::Error(pack + ": the pack has no classification head");
    }
    auto model = atune::load_bert_for_sequence_classification(model_dir, info.head);
    atune::AdapterPackLoad load = atune::load_adapter_pack(model, pack);
    for (const auto& warning : load.warnings) std::cerr << "warning: " << warning << "\n";
    model->eval();  // no dropout
    auto tokenizer = atune::load_tokenizer(model_dir);
    // The length the pack was trained with (longer inputs are truncated as in training).
    const int64_t max_length = info.max_length > 0 ? info.max_length : 128;
    torch::NoGradGuard no_grad;
    for (std::string line; std::getline(std::cin, line);) {
      if (line.empty()) continue;
      atune::Encoding e = tokenizer->encode(line, std::nullopt, max_length);
      auto ids = torch::tensor(e.input_ids, torch::kLong).unsqueeze(0);
      auto probabilities = torch::softmax(model(ids), -1)[0];
      const int64_t best = probabilities.argmax().item<int64_t>();
      const std::string label = info.head->id2label.empty()
                                    ? std::to_string(best)
                                    : info.head->id2label[static_cast<size_t>(best)];
      std::cout << label << "\t" << probabilities[best].item<double>() << "\t" << line << "\n";
    }
  } catch (const atune::Error& e) {
    std::cerr << "classify: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {  // LibTorch's own failures, e.g. out of memory
    std::cerr << "classify: LibTorch: " << e.what_without_backtrace() << "\n";
    return 1;
  }
  return 0;
}
