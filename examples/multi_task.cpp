// One base, many tasks through the public API: three GLUE tasks trained one after another on
// one model object (each owns its adapters, LayerNorm copies and head; the base never changes),
// kept as adapter packs, then served together: one Predictor answers a batch of requests that
// mixes the three tasks and the plain base in a single call.
//
//   multi_task MODEL_DIR GLUE_DIR OUT_DIR [TRAIN_EXAMPLES]
// e.g. multi_task models/adaptertune-base-uncased-L4-H256 data/glue runs/multi 2000

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <adaptertune/adaptertune.h>

namespace atune = adaptertune;

int main(int argc, char** argv) {
  atune::tune_cpu_allocator();  // as adapter_demo.cpp says
  if (argc < 4) {
    std::cerr << "usage: multi_task MODEL_DIR GLUE_DIR OUT_DIR [TRAIN_EXAMPLES]\n";
    return 2;
  }
  const std::string model_dir = argv[1], glue_dir = argv[2], out = argv[3];
  const size_t train_examples = argc > 4 ? std::stoul(argv[4]) : 2000;
  try {
    auto tokenizer = atune::load_tokenizer(model_dir);
    atune::set_seed(42);
    auto model = atune::load_bert_for_sequence_classification(model_dir, atune::HeadConfig{});
    const std::string identity = atune::base_weights_sha256(*model, false, false);

    struct Task {
      const char* glue_name;
      const char* name;
      atune::AdapterConfig adapter;
    };
    const std::vector<Task> tasks = {{"SST-2", "sentiment", atune::AdapterConfig::houlsby()},
                                     {"STS-B", "similarity", atune::AdapterConfig::houlsby()},
                                     {"MRPC", "paraphrase", atune::AdapterConfig::pfeiffer()}};
    std::vector<std::string> packs;
    for (const Task& t : tasks) {
      const atune::GlueTaskInfo& glue = atune::glue_task(t.glue_name);
      // A task: adapters in every layer and a head of its own (its labels, or regression).
      model->add_task(t.name, t.adapter,
                      glue.regression() ? atune::HeadConfig::regression()
                                        : atune::HeadConfig::classification(glue.labels));
      atune::TextDataset train = atune::read_glue(glue, glue_dir, "train");
      train.examples.resize(std::min(train.examples.size(), train_examples));
      atune::FreezePolicy policy;  // adapters + the task's LayerNorm copies + its head
      policy.train_pooler = atune::default_train_pooler(*model->bert);
      atune::TrainerOptions options;
      options.epochs = 1;
      options.max_length = 64;
      options.progress = false;
      options.output_dir = out + "/" + t.name;
      atune::Trainer trainer(
          model, glue, atune::encode_examples(train, *tokenizer, 64),
          atune::encode_examples(atune::read_glue(glue, glue_dir, "dev"), *tokenizer, 64), policy,
          std::string(t.name), options, *tokenizer);
      const atune::TrainResult result = trainer.train();
      std::cout << t.name << " (" << glue.name << ") dev";
      for (const auto& [metric, value] : result.best_metrics) {
        std::cout << " " << metric << "=" << value;
      }
      std::cout << "\n";
      packs.push_back(*result.best_model);
    }
    std::cout << "base unchanged after three tasks: "
              << (atune::base_weights_sha256(*model, false, false) == identity ? "yes" : "NO")
              << "\n";

    // Serving: the base once, the three packs on top, one call for a mixed batch.
    const atune::Predictor predictor(model_dir, packs);
    for (const auto& task : predictor.tasks()) {
      std::cout << task << " adds " << predictor.task_bytes(task) << " bytes to the "
                << predictor.base_bytes() << "-byte base\n";
    }
    const std::vector<atune::TaskRequest> requests = {
        {"sentiment", "a gorgeous, witty, seductive movie.", std::nullopt},
        {"similarity", "A man is playing a guitar.", std::string("A man plays music.")},
        {"paraphrase", "The company's shares fell 5 percent.",
         std::string("Shares of the company dropped 5 percent.")},
        {std::nullopt, "no task: the plain base and the model's own head", std::nullopt},
        {"sentiment", "the plot is a tedious mess.", std::nullopt}};
    for (const atune::Prediction& p : predictor.predict(requests)) std::cout << p.to_json() << "\n";
  } catch (const atune::Error& e) {
    std::cerr << "multi_task: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {  // LibTorch's own failures, e.g. out of memory
    std::cerr << "multi_task: LibTorch: " << e.what_without_backtrace() << "\n";
    return 1;
  }
  return 0;
}
