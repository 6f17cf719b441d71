// A tour of the adapter API: build a BERT encoder, add bottleneck adapters, freeze the base, look
// at the parameter report, check that fresh adapters leave the output almost unchanged, and run a
// few adapter training steps on random tokens.
//
//   adapter_demo [--adapter houlsby|pfeiffer] [--layers N] [--hidden D] [--heads H]
//                [--steps N] [--batch B] [--seq S]
// Without size flags the model has bert-base's shape (110M parameters).

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include <torch/torch.h>

#include <adaptertune/adaptertune.h>

namespace atune = adaptertune;

int main(int argc, char** argv) {
  // TCMalloc serves malloc where the build links adaptertune::tcmalloc (examples/CMakeLists.txt);
  // otherwise glibc's malloc, tuned to keep freed activations (README, "The CPU allocator").
  atune::tune_cpu_allocator();
  std::cout << "malloc: " << atune::cpu_allocator() << "\n";
  atune::BertConfig config = atune::BertConfig::bert_base();
  std::string adapter = "houlsby";
  int steps = 3, batch = 8, seq = 64;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "adapter_demo: " << flag << " needs a value\n";
      return 2;
    }
    std::string value = argv[++i];
    if (flag == "--adapter")
      adapter = value;
    else if (flag == "--layers")
      config.num_hidden_layers = std::atoi(value.c_str());
    else if (flag == "--hidden")
      config.hidden_size = std::atoi(value.c_str());
    else if (flag == "--heads")
      config.num_attention_heads = std::atoi(value.c_str());
    else if (flag == "--steps")
      steps = std::atoi(value.c_str());
    else if (flag == "--batch")
      batch = std::atoi(value.c_str());
    else if (flag == "--seq")
      seq = std::atoi(value.c_str());
    else {
      std::cerr << "adapter_demo: unknown flag " << flag << "\n";
      return 2;
    }
  }
  config.intermediate_size = 4 * config.hidden_size;

  try {
    torch::manual_seed(0);
    atune::BertForSequenceClassification model(config,
                                               atune::HeadConfig::classification({"neg", "pos"}));
    auto input = torch::randint(1, config.vocab_size, {batch, seq}, torch::kLong);
    auto labels = torch::randint(0, 2, {batch}, torch::kLong);

    model->eval();
    torch::Tensor before;
    {
      torch::NoGradGuard no_grad;
      before = model->bert->forward(input).last_hidden_state;
    }
    model->bert->add_adapter(adapter, atune::AdapterConfig::preset(adapter));
    {
      torch::NoGradGuard no_grad;
      auto after = model->bert->forward(input).last_hidden_state;
      std::cout << "fresh " << adapter << " adapters change the hidden states by at most "
                << (after - before).abs().max().item<double>() << "\n\n";
    }

    // Houlsby's recipe: the task trains its adapters, its own LayerNorm copies and its head.
    atune::prepare_task_training(*model, adapter, atune::FreezePolicy{});
    std::cout << atune::parameter_report(*model, adapter).to_table() << "\n";

    model->train();
    torch::optim::AdamW optimizer(atune::trainable_parameters(*model),
                                  torch::optim::AdamWOptions(1e-3));
    for (int step = 1; step <= steps; ++step) {
      auto start = std::chrono::steady_clock::now();
      optimizer.zero_grad();
      auto loss = model->loss(model->forward(input), labels);
      loss.backward();
      optimizer.step();
      double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      std::cout << "step " << step << ": loss " << loss.item<double>() << ", " << ms << " ms ("
                << batch << " x " << seq << " tokens, " << torch::get_num_threads()
                << " threads)\n";
    }
  } catch (const atune::Error& e) {
    std::cerr << "adapter_demo: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {  // LibTorch's own failures, e.g. out of memory
    std::cerr << "adapter_demo: LibTorch: " << e.what_without_backtrace() << "\n";
    return 1;
  }
  return 0;
}
