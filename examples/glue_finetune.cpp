// Adapter fine-tuning on a GLUE task through the public API: load a base model directory, add
// Houlsby adapters, read and tokenize the task, train with the Trainer, report dev metrics and
// keep the best adapter pack.
//
//   glue_finetune MODEL_DIR GLUE_DIR TASK OUT_DIR [EPOCHS] [TRAIN_EXAMPLES]
// e.g. glue_finetune models/adaptertune-base-uncased-L4-H256 data/glue SST-2 runs/sst2 1 2000

#include <cstdlib>
#include <iostream>
#include <string>

#include <adaptertune/adaptertune.h>

namespace atune = adaptertune;

int main(int argc, char** argv) {
  atune::tune_cpu_allocator();  // as adapter_demo.cpp says
  if (argc < 5) {
    std::cerr << "usage: glue_finetune MODEL_DIR GLUE_DIR TASK OUT_DIR [EPOCHS] [TRAIN_EXAMPLES]\n";
    return 2;
  }
  const std::string model_dir = argv[1], glue_dir = argv[2], task_name = argv[3], out = argv[4];
  try {
    const atune::GlueTaskInfo& task = atune::glue_task(task_name);
    auto tokenizer = atune::load_tokenizer(model_dir);  // vocab.txt + tokenizer_config.json
    atune::HeadConfig head = task.regression() ? atune::HeadConfig::regression()
                                               : atune::HeadConfig::classification(task.labels);
    atune::set_seed(42);  // the head and adapters start the same every run
    atune::LoadReport report;
    auto model = atune::load_bert_for_sequence_classification(model_dir, head, &report);
    std::cerr << "loaded " << model_dir << ": " << report.summary() << "\n";
    model->bert->add_adapter("task", atune::AdapterConfig::houlsby());

    atune::TextDataset train = atune::read_glue(task, glue_dir, "train");
    if (argc > 6)
      train.examples.resize(std::min<size_t>(train.examples.size(), std::stoul(argv[6])));
    atune::TextDataset dev = atune::read_glue(task, glue_dir, "dev");

    atune::FreezePolicy policy;  // adapters + LayerNorms + head
    // A base pretrained without a pooler (as the shipped one) trains it too.
    policy.train_pooler = atune::default_train_pooler(*model->bert);
    atune::TrainerOptions options;
    options.epochs = argc > 5 ? std::atoi(argv[5]) : 1;
    options.output_dir = out;
    options.max_length = 128;
    atune::Trainer trainer(model, task,
                           atune::encode_examples(train, *tokenizer, options.max_length),
                           atune::encode_examples(dev, *tokenizer, options.max_length), policy,
                           std::string("task"), options, *tokenizer);
    atune::TrainResult result = trainer.train();
    std::cout << task.name << " dev";
    for (const auto& [metric, value] : result.best_metrics)
      std::cout << " " << metric << "=" << value;
    std::cout << " (best adapter pack: " << out << "/best)\n";
  } catch (const atune::Error& e) {
    std::cerr << "glue_finetune: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {  // LibTorch's own failures, e.g. out of memory
    std::cerr << "glue_finetune: LibTorch: " << e.what_without_backtrace() << "\n";
    return 1;
  }
  return 0;
}
