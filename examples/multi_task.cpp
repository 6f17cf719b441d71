// One base, many tasks through the public API: three GLUE tasks trained one after another on
// one model object (each owns its adapters, LayerNorm copies and head; the base never changes),
// kept as adapter packs, then served together: one Predictor answers a batch of requests that
// mixes the three tasks and the plain base in a single call. Given a SQuAD file, a fourth task
// answers questions: a span head of its own around the same BertModel, trained on that file.
//
//   multi_task MODEL_DIR GLUE_DIR OUT_DIR [TRAIN_EXAMPLES [SQUAD_FILE]]
// e.g. multi_task models/adaptertune-base-uncased-L4-H256 data/glue runs/multi 2000
//      data/squad/train-v1.1.json

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include <adaptertune/adaptertune.h>

namespace atune = adaptertune;

int main(int argc, char** argv) {
  atune::tune_cpu_allocator();  // as adapter_demo.cpp says
  if (argc < 4) {
    std::cerr << "usage: multi_task MODEL_DIR GLUE_DIR OUT_DIR [TRAIN_EXAMPLES [SQUAD_FILE]]\n";
    return 2;
  }
  const std::string model_dir = argv[1], glue_dir = argv[2], out = argv[3];
  const size_t train_examples = argc > 4 ? std::stoul(argv[4]) : 2000;
  const std::string squad_file = argc > 5 ? argv[5] : "";
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
    if (!squad_file.empty()) {
      // A span task on the same BertModel: its adapters join the others there, its span head is
      // a Linear of its own around it. (A real run trains on train-v1.1.json, evaluates on dev.)
      atune::BertForQuestionAnswering reader(model->bert);
      atune::SquadDataset questions = atune::read_squad(squad_file);
      if (questions.examples.size() > train_examples) questions.examples.resize(train_examples);
      reader->bert->add_adapter("reader", atune::AdapterConfig::houlsby());
      atune::QuestionAnsweringOptions windows;
      windows.features.max_length = 64;  // the shipped base has 128 positions
      windows.features.doc_stride = 32;
      windows.features.max_query_length = 16;
      atune::TrainerOptions options;
      options.epochs = 1;
      options.batch_size = 8;
      options.progress = false;
      options.output_dir = out + "/reader";
      atune::QuestionAnsweringTrainer trainer(reader, questions, questions, atune::FreezePolicy{},
                                              std::string("reader"), options, windows, *tokenizer);
      const atune::TrainResult result = trainer.train();
      std::cout << "reader (SQuAD) f1=" << result.best_metrics.at("f1") << "\n";
      packs.push_back(*result.best_model);
    }
    std::cout << "base unchanged after all tasks: "
              << (atune::base_weights_sha256(*model, false, false) == identity ? "yes" : "NO")
              << "\n";

    // Serving: the base once, the three packs on top, one call for a mixed batch.
    const atune::Predictor predictor(model_dir, packs);
    for (const auto& task : predictor.tasks()) {
      std::cout << task << " adds " << predictor.task_bytes(task) << " bytes to the "
                << predictor.base_bytes() << "-byte base\n";
    }
    std::vector<atune::TaskRequest> requests = {
        {"sentiment", "a gorgeous, witty, seductive movie.", std::nullopt},
        {"similarity", "A man is playing a guitar.", std::string("A man plays music.")},
        {"paraphrase", "The company's shares fell 5 percent.",
         std::string("Shares of the company dropped 5 percent.")},
        {std::nullopt, "no task: the plain base and the model's own head", std::nullopt},
        {"sentiment", "the plot is a tedious mess.", std::nullopt}};
    if (!squad_file.empty()) {
      // A question gives its context as the pair; the answer is a stretch of it.
      requests.push_back({"reader", "Where is Normandy?",
                          std::string("The Normans gave their name to Normandy, in France.")});
    }
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
