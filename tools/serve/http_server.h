#pragma once
// `adaptertune serve`: a Predictor behind HTTP (cpp-httplib), with dynamic batching, task loading
// and unloading at run time, size limits, overload answers and Prometheus metrics.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "adaptertune/inference/predictor.h"
#include "dynamic_batcher.h"

namespace adaptertune::serve {

struct ServerOptions {
  /// Where to listen; 127.0.0.1 unless told otherwise.
  std::string host = "127.0.0.1";
  /// 0: any free port (bind() returns it).
  int port = 8080;
  DynamicBatcherOptions batching;
  /// A /v1/predict request not answered by then gets 504.
  std::chrono::milliseconds request_timeout{30000};
  /// Request bodies above this get 413.
  size_t max_body_bytes = 1 << 20;
  /// A text or text pair above this many bytes gets 413.
  size_t max_text_bytes = 64 << 10;
  /// Inputs per request above this get 413.
  int64_t max_inputs = 256;
  /// Packs POST /v1/tasks may load, only from below here; empty: loading is off.
  std::string packs_dir;
  /// When set, POST /v1/tasks and DELETE /v1/tasks/NAME need `Authorization: Bearer KEY` or
  /// `X-API-Key: KEY`.
  std::string api_key;
  /// Connections served at once: each open connection holds a thread, a kept-alive idle one
  /// for up to 5 s (cpp-httplib's keep-alive timeout). The threads mostly wait (the model runs on
  /// the batcher's thread), so there are many: with 8, a browser's half-dozen idle connections
  /// made other clients wait those 5 s.
  int threads = 64;
};

class HttpServer {
 public:
  /// `predictor` must outlive the server.
  HttpServer(Predictor& predictor, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds the listening socket; returns the port. Throws Error when it cannot.
  int bind();
  /// Serves until stop(); returns once the requests in flight are answered.
  void serve();
  /// Stops accepting connections (from any thread); serve() then returns.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace adaptertune::serve
