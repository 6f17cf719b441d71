// `adaptertune serve`: a model directory and adapter packs behind HTTP (see tools/serve/).

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "adaptertune/error.h"
#include "adaptertune/inference/predictor.h"
#include "commands.h"
#include "common.h"
#include "http_server.h"
#include "squad_command.h"

namespace adaptertune::cli {
namespace {

struct ServeOptions {
  std::string model;
  std::vector<std::string> adapter_packs;
  serve::ServerOptions server;
  int64_t max_wait_ms = 0;
  int64_t request_timeout_ms = 30000;
  std::string device = "auto";
  std::optional<std::string> precision;
  std::optional<int64_t> max_length;
  QuestionAnsweringOverrides squad;
  bool unpacked_weights = false;
  /// --api-key as given: an empty one is refused, not taken for "no key".
  std::optional<std::string> api_key;
};

// The key that guards loading and unloading: --api-key, else $ADAPTERTUNE_API_KEY, else none.
// One given but empty (`--api-key "$UNSET"`) is refused: taken for none, it would leave the
// endpoints open. So is one that no header can carry: HTTP strips white space at a value's ends
// and forbids control characters, so no request could match it.
std::string api_key(const std::optional<std::string>& flag) {
  const char* environment = std::getenv("ADAPTERTUNE_API_KEY");
  if (!flag && !environment) return "";
  const std::string key = flag ? *flag : environment;
  const std::string source = flag ? "--api-key" : "$ADAPTERTUNE_API_KEY";
  if (key.empty()) {
    throw Error(source +
                " is empty: give a key, or leave out both --api-key and $ADAPTERTUNE_API_KEY "
                "to leave loading and unloading open");
  }
  const auto unsendable = [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; };
  if (key.front() == ' ' || key.back() == ' ' || std::any_of(key.begin(), key.end(), unsendable)) {
    throw Error(source +
                ": a key with white space at its ends or control characters cannot be sent in "
                "an HTTP header");
  }
  return key;
}

// Whether only this machine can connect to `host`.
bool loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

int run(ServeOptions o) {
  // SIGINT and SIGTERM go to one thread that stops the server, so that requests in flight are
  // answered before the process exits. Blocked before any other thread exists (LibTorch's
  // included), so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  o.server.api_key = api_key(o.api_key);
  o.server.batching.max_wait = std::chrono::milliseconds(o.max_wait_ms);
  o.server.request_timeout = std::chrono::milliseconds(o.request_timeout_ms);
  PredictorOptions options = predictor_options(o.model, o.device, o.precision, o.max_length);
  options.batch_size = o.server.batching.max_batch;
  options.prepack_frozen_weights = !o.unpacked_weights;
  options.span_overrides = o.squad;
  Predictor predictor(o.model, o.adapter_packs, options);
  // Without --packs-dir no span pack can come later.
  if (o.server.packs_dir.empty()) refuse_squad_flags_without_spans(o.squad, predictor, "serve");
  for (const auto& w : predictor.warnings()) warn(w);
  if (o.server.api_key.empty() && !loopback(o.server.host)) {
    warn("no --api-key: any client that reaches " + o.server.host +
         " may unload tasks (DELETE /v1/tasks/NAME)" +
         (o.server.packs_dir.empty() ? std::string() : " and load packs from --packs-dir"));
  }

  serve::HttpServer server(predictor, o.server);
  const int port = server.bind();
  // A request in flight is answered within --request-timeout-ms (504 at the latest), its reply
  // written within httplib's 5 s. A connection still open after that is a client still sending
  // its request (one that trickles it can go on for ever: README, "Serving"), which serve()
  // would wait for: the process exits without it.
  const auto grace = o.server.request_timeout + std::chrono::seconds(10);
  std::mutex served_mutex;
  std::condition_variable served_changed;
  bool served = false;
  std::thread stopper([&, stop_signals] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    std::fprintf(stderr, "serve: %s: finishing the requests in flight\n",
                 signal == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
    std::unique_lock<std::mutex> lock(served_mutex);
    if (!served_changed.wait_for(lock, grace, [&] { return served; })) {
      std::fprintf(
          stderr,
          "serve: stopped, leaving connections whose requests had not arrived %lld s "
          "after the signal\n",
          static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(grace).count()));
      std::fflush(stderr);
      std::_Exit(0);
    }
  });
  std::fprintf(stderr, "serve: listening on http://%s:%d (%zu tasks, device %s)\n",
               o.server.host.c_str(), port, predictor.tasks().size(), options.device.str().c_str());
  std::fflush(stderr);
  server.serve();
  {
    std::lock_guard<std::mutex> lock(served_mutex);
    served = true;
  }
  served_changed.notify_all();
  stopper.join();
  std::fprintf(stderr, "serve: stopped\n");
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Answer predictions over HTTP: one base, many tasks, dynamic batching");
  add_model_option(cmd, o->model, "Model directory (config.json, model.safetensors, vocab.txt)")
      ->required();
  cmd->add_option("--adapter-pack", o->adapter_packs, "Adapter pack to serve (repeatable)")
      ->check(CLI::ExistingDirectory)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--host", o->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->server.port, "Port (0: any free port, printed on stderr)")
      ->check(integer_range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--packs-dir", o->server.packs_dir,
                  "Directory POST /v1/tasks may load packs from (default: loading is off)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--api-key", o->api_key,
                  "Key that POST /v1/tasks and DELETE /v1/tasks/NAME require (default: "
                  "$ADAPTERTUNE_API_KEY; none: they are open)");
  cmd->add_option("--max-batch", o->server.batching.max_batch,
                  "Examples run together in one forward pass")
      ->check(integer_range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--max-wait-ms", o->max_wait_ms,
                  "How long a request waits for others to batch with")
      ->check(integer_range(0, 10000))
      ->capture_default_str();
  cmd->add_option("--max-queue", o->server.batching.max_queue,
                  "Examples that may wait; beyond it requests get 503")
      ->check(integer_range(1, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--request-timeout-ms", o->request_timeout_ms,
                  "A request not answered by then gets 504")
      ->check(integer_range(1, 3600000))
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", o->server.max_body_bytes, "Larger bodies get 413")
      ->check(integer_range(1, int64_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--max-text-bytes", o->server.max_text_bytes,
                  "Larger texts (text + text_pair) get 413")
      ->check(integer_range(1, int64_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--max-inputs", o->server.max_inputs, "More inputs per request get 413")
      ->check(integer_range(1, int64_t{1} << 20))
      ->capture_default_str();
  cmd->add_option("--threads", o->server.threads,
                  "Connections served at once (an idle kept-alive one holds its thread up to 5 s)")
      ->check(integer_range(1, 1024))
      ->capture_default_str();
  add_predictor_options(cmd, o->max_length, o->device, o->precision);
  add_squad_options(cmd, o->squad, /*from_pack=*/true);
  cmd->add_flag("--unpacked-weights", o->unpacked_weights,
                "On the CPU, keep no copy of the weights in oneDNN's layout: two bytes (bf16) or "
                "four (fp32) less per weight value, short requests up to 1.66x (bf16) and 3.4x "
                "(fp32) slower");
  return [o] { return run(*o); };
}

}  // namespace adaptertune::cli
