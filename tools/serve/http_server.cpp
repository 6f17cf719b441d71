#include "http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <future>
#include <regex>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "adaptertune/format.h"
#include "metrics.h"
#include "page.h"

namespace adaptertune::serve {
namespace {

using Json = nlohmann::ordered_json;

// The 413 answer's message, whether httplib refused a Content-Length or route_with_body() counted
// a chunked body past --max-body-bytes.
constexpr const char* kBodyTooLarge = "the request body is too large";

// `{"error": message}`. A message may quote what a client sent as the URL decoded it (a path, a
// task name), which need not be UTF-8: such bytes become U+FFFD, where a plain dump() threw and
// the client got no reply at all; and a huge one is not echoed whole (elided()).
std::string error_body(const std::string& message) {
  return json_text(Json{{"error", elided(message)}});
}

// A handler's answer: the status and a JSON body (an error is error_body()).
struct Reply {
  int status = 200;
  std::string body;
  static Reply error(int status, const std::string& message) {
    return {status, error_body(message)};
  }
};

// Whether `given` is `secret`, in a time that depends on `given`'s length only: an early exit
// at the first differing byte would let a client time its way to the key byte by byte.
bool same_secret(const std::string& given, const std::string& secret) {
  unsigned char differ = given.size() != secret.size() || secret.empty();
  for (size_t i = 0; i < given.size() && !secret.empty(); ++i) {
    differ |= static_cast<unsigned char>(given[i] ^ secret[i % secret.size()]);
  }
  return differ == 0;
}

// Whether `path` is `root` or below it (both absolute and normalised).
bool inside(const std::filesystem::path& path, const std::filesystem::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

struct HttpServer::Impl {
  Predictor& predictor;
  ServerOptions options;
  Metrics metrics;
  DynamicBatcher batcher;
  httplib::Server http;
  bool bound = false;
  socket_t listen_socket = INVALID_SOCKET;
  // Each endpoint's path pattern and the methods it answers, as get(), post() and del() register
  // them: a request for a known path by another method gets 405 with these in its Allow header.
  struct Endpoint {
    std::string pattern;
    std::regex path;
    std::string methods;  // "GET, HEAD, POST"
  };
  std::vector<Endpoint> endpoints;

  Impl(Predictor& p, ServerOptions o)
      : predictor(p),
        options(std::move(o)),
        batcher(p, options.batching, [this](int64_t n) { metrics.observe_batch(n); }) {}

  bool authorised(const httplib::Request& request) const {
    if (options.api_key.empty()) return true;
    // Both are compared whatever the first gives, so that which one is sent takes no other time.
    const bool bearer =
        same_secret(request.get_header_value("Authorization"), "Bearer " + options.api_key);
    const bool header = same_secret(request.get_header_value("X-API-Key"), options.api_key);
    return bearer || header;
  }

  // `body` is the request's body as the caller parsed it; `parse_error` the parser's message
  // when it is not JSON.
  Reply predict(const Json& body, const std::string& parse_error) {
    if (!parse_error.empty()) return Reply::error(400, "invalid JSON: " + parse_error);
    if (!body.is_object()) return Reply::error(400, "expected a JSON object");
    const bool many = body.contains("inputs");
    std::vector<TaskRequest> requests;
    try {
      if (many) {
        if (body.size() != 1) {
          return Reply::error(400, "with \"inputs\", the body has no other key");
        }
        const Json& inputs = body["inputs"];
        if (!inputs.is_array() || inputs.empty()) {
          return Reply::error(400, "\"inputs\" must be a non-empty array of requests");
        }
        if (static_cast<int64_t>(inputs.size()) > options.max_inputs) {
          return Reply::error(413, "\"inputs\" has " + std::to_string(inputs.size()) +
                                       " requests, the limit is " +
                                       std::to_string(options.max_inputs));
        }
        for (size_t i = 0; i < inputs.size(); ++i) {
          requests.push_back(
              parse_task_request(json_text(inputs[i]), "inputs[" + std::to_string(i) + "]"));
        }
      } else {
        requests.push_back(parse_task_request(json_text(body), "body"));
      }
    } catch (const Error& e) {
      return Reply::error(400, e.what());
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      const TaskRequest& r = requests[i];
      const std::string where = many ? "inputs[" + std::to_string(i) + "]" : "body";
      const size_t bytes = r.text.size() + (r.text_pair ? r.text_pair->size() : 0);
      if (bytes > options.max_text_bytes) {
        return Reply::error(413, where + ": the text is " + std::to_string(bytes) +
                                     " bytes, the limit is " +
                                     std::to_string(options.max_text_bytes));
      }
      if (r.task && !predictor.has_task(*r.task)) {
        return Reply::error(404,
                            where + ": no task \"" + *r.task + "\" (GET /v1/tasks lists them)");
      }
      try {
        predictor.check_request(r);  // e.g. a question for a span task without its context
      } catch (const Error& e) {
        if (r.task && !predictor.has_task(*r.task)) {
          return Reply::error(404, where + ": task \"" + *r.task + "\" was unloaded");
        }
        return Reply::error(400, where + ": " + e.what());
      }
    }
    std::optional<std::future<std::vector<Prediction>>> answer = batcher.submit(requests);
    if (!answer) return Reply::error(503, "the queue is full; retry later");
    if (answer->wait_for(options.request_timeout) != std::future_status::ready) {
      return Reply::error(
          504, "not answered within " + std::to_string(options.request_timeout.count()) + " ms");
    }
    std::vector<Prediction> predictions;
    try {
      predictions = answer->get();
    } catch (const Error& e) {
      // A task unloaded while the request waited.
      for (const auto& r : requests) {
        if (r.task && !predictor.has_task(*r.task)) {
          return Reply::error(404, "task \"" + *r.task + "\" was unloaded");
        }
      }
      return Reply::error(500, e.what());
    }
    if (!many) return {200, predictions.at(0).to_json()};
    std::string out = "{\"outputs\":[";
    for (size_t i = 0; i < predictions.size(); ++i) {
      out += (i ? "," : "") + predictions[i].to_json();
    }
    return {200, out + "]}"};
  }

  Reply list_tasks() const {
    Json tasks = Json::array();
    for (const auto& name : predictor.tasks()) {
      try {
        tasks.push_back(Json::parse(predictor.task_info(name).to_json()));
      } catch (const Error&) {
        // Unloaded since tasks() listed it.
      }
    }
    return {200, json_text(Json{{"tasks", tasks}})};
  }

  // GET /v1/model: the base every task shares, how it runs, and what a request that names no
  // task gets (BaseInfo::to_json(), which names the model directory, not where it lies), with
  // the tasks' names and the library's version (Predictor::describe()).
  Reply describe_model() const { return {200, predictor.describe()}; }

  Reply load_task(const httplib::Request& request, const std::string& text) {
    if (!authorised(request)) return Reply::error(401, "this endpoint needs the API key");
    if (options.packs_dir.empty()) {
      return Reply::error(403, "loading packs is off: start the server with --packs-dir");
    }
    Json body;
    try {
      check_json_nesting(text, "body");
      body = Json::parse(text);
    } catch (const std::exception& e) {  // the parser's error, or check_json_nesting()'s
      return Reply::error(400, std::string("invalid JSON: ") + e.what());
    }
    if (!body.is_object() || !body.contains("path") || !body["path"].is_string()) {
      return Reply::error(400, "expected {\"path\": string, \"name\": string (optional)}");
    }
    std::optional<std::string> name;
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (it.key() == "name") {
        if (!it->is_string()) return Reply::error(400, "\"name\" must be a string");
        name = it->get<std::string>();
      } else if (it.key() != "path") {
        return Reply::error(400, "unknown key \"" + it.key() + "\" (expected \"path\", \"name\")");
      }
    }
    // Below --packs-dir as written (no "..", no absolute path elsewhere) and once links are
    // resolved; told apart from a missing pack only inside it.
    namespace fs = std::filesystem;
    const std::string path = body["path"].get<std::string>();
    std::error_code error;
    const fs::path root = fs::canonical(options.packs_dir, error);
    const fs::path written = (root / path).lexically_normal();
    if (error || path.empty() || !inside(written, root) || written == root) {
      return Reply::error(403, "\"path\": " + path + " is not a directory below --packs-dir");
    }
    const fs::path pack = fs::canonical(written, error);
    if (error) return Reply::error(404, "\"path\": no pack at " + path);
    if (!inside(pack, root)) {
      return Reply::error(403, "\"path\": " + path + " leads outside --packs-dir");
    }
    try {
      if (name && predictor.has_task(*name)) {
        return Reply::error(409, "task \"" + *name + "\" is loaded already");
      }
      const std::string added = predictor.add_task(pack.string(), name);
      return {201, predictor.task_info(added).to_json()};
    } catch (const Error& e) {
      const std::string message = e.what();
      const bool taken = message.find("already exists") != std::string::npos;
      return Reply::error(taken ? 409 : 400, message);
    }
  }

  Reply unload_task(const httplib::Request& request, const std::string& name) {
    if (!authorised(request)) return Reply::error(401, "this endpoint needs the API key");
    if (!predictor.has_task(name)) return Reply::error(404, "no task \"" + name + "\"");
    try {
      predictor.remove_task(name);
    } catch (const Error& e) {
      // Still there: another task builds on it (a fusion, a stack); else removed by another call
      // meanwhile.
      return Reply::error(predictor.has_task(name) ? 409 : 404, e.what());
    }
    return {200, json_text(Json{{"removed", name}})};
  }

  // `response` as `answer` (a callable returning a Reply) replies: JSON content type, metrics,
  // and no exception escapes into httplib.
  template <typename Answer>
  void respond(const std::string& endpoint, const httplib::Request& request,
               httplib::Response& response, Answer answer) {
    // A JSON answer is whole: httplib would cut it to a Range header's bytes after the handler
    // (and, the status being set, call the cut 200), even for a POST, where RFC 9110 has servers
    // ignore Range. The request is httplib's own non-const object, handed over as const.
    const_cast<httplib::Request&>(request).ranges.clear();
    const auto start = std::chrono::steady_clock::now();
    Reply reply;
    try {
      reply = answer();
    } catch (const std::exception& e) {
      reply = Reply::error(500, e.what());
    }
    response.status = reply.status;
    if (reply.status == 503) response.set_header("Retry-After", "1");
    response.set_content(reply.body, "application/json");
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics.observe_request(endpoint, reply.status, seconds);
  }

  // httplib's Get() (which answers HEAD too), Post() and Delete(), recording the endpoint.
  template <typename Handler>
  void get(const std::string& pattern, Handler handler) {
    http.Get(pattern, std::move(handler));
    allow(pattern, "GET, HEAD");
  }
  template <typename Handler>
  void post(const std::string& pattern, Handler handler) {
    http.Post(pattern, std::move(handler));
    allow(pattern, "POST");
  }
  template <typename Handler>
  void del(const std::string& pattern, Handler handler) {
    http.Delete(pattern, std::move(handler));
    allow(pattern, "DELETE");
  }
  void allow(const std::string& pattern, const std::string& methods) {
    for (Endpoint& endpoint : endpoints) {
      if (endpoint.pattern == pattern) {
        endpoint.methods += ", " + methods;
        return;
      }
    }
    endpoints.push_back({pattern, std::regex(pattern), methods});
  }
  // The methods a known path is answered for; empty for a path no endpoint has.
  std::string allowed_methods(const std::string& path) const {
    for (const Endpoint& endpoint : endpoints) {
      if (std::regex_match(path, endpoint.path)) return endpoint.methods;
    }
    return "";
  }

  // Wraps a handler of the request alone (see respond()).
  template <typename Handler>
  httplib::Server::Handler route(const std::string& endpoint, Handler handler) {
    return [this, endpoint, handler](const httplib::Request& request, httplib::Response& response) {
      respond(endpoint, request, response, [&] { return handler(request); });
    };
  }

  // Wraps a handler of a request and its body (see respond()), the body read here and held to
  // --max-body-bytes: httplib holds a body with a Content-Length to set_payload_max_length(),
  // but reads a chunked one whole however large it is. Past the limit the rest is read and
  // dropped, as httplib skips a body over the limit, so that the client, still sending, is not
  // cut off before it reads the 413.
  template <typename Handler>
  httplib::Server::HandlerWithContentReader route_with_body(const std::string& endpoint,
                                                            Handler handler) {
    return [this, endpoint, handler](const httplib::Request& request, httplib::Response& response,
                                     const httplib::ContentReader& reader) {
      respond(endpoint, request, response, [&] {
        std::string body;
        bool too_large = false;
        const auto receive = [&](const char* data, size_t length) {
          too_large = too_large || length > options.max_body_bytes - body.size();
          if (!too_large) body.append(data, length);
          return true;
        };
        // httplib hands a multipart/form-data body's parts to a second callback, which the
        // one-callback reader leaves empty (std::bad_function_call: a 500): such a body is read
        // through the multipart reader, to its end, and refused.
        const bool multipart = request.is_multipart_form_data();
        const bool read =
            multipart ? reader([](const httplib::MultipartFormData&) { return true; }, receive)
                      : reader(receive);
        // httplib answers 413 itself for a Content-Length over the limit, having skipped it.
        if (too_large || (!read && response.status == 413)) {
          return Reply::error(413, kBodyTooLarge);
        }
        if (multipart) {
          return Reply::error(415,
                              "the body is JSON (Content-Type: application/json), not "
                              "multipart/form-data");
        }
        if (!read) return Reply::error(400, "the request body could not be read");
        return handler(request, body);
      });
    };
  }

  // POST /v1/predict, with its examples counted per task for the metrics (a failure as 500).
  Reply predict_counted(const std::string& text) {
    Json body;
    std::string parse_error;
    try {
      check_json_nesting(text, "body");
      body = Json::parse(text);
    } catch (const std::exception& e) {  // the parser's error, or check_json_nesting()'s
      parse_error = e.what();
    }
    Reply reply;
    try {
      reply = predict(body, parse_error);
    } catch (...) {
      count_examples(body, 500);
      throw;
    }
    count_examples(body, reply.status);
    return reply;
  }

  // Examples per task for the metrics.
  void count_examples(const Json& body, int status) {
    // Only tasks the server has become labels: a label per made-up name would let clients
    // grow the metrics without bound.
    auto task_of = [this](const Json& input) {
      if (!input.is_object() || !input.contains("task") || !input["task"].is_string())
        return std::string();
      std::string task = input["task"].get<std::string>();
      return predictor.has_task(task) ? task : std::string();
    };
    if (body.is_object() && body.contains("inputs") && body["inputs"].is_array()) {
      for (const auto& input : body["inputs"]) metrics.count_example(task_of(input), status);
    } else {
      metrics.count_example(task_of(body), status);
    }
  }
};

HttpServer::HttpServer(Predictor& predictor, ServerOptions options)
    : impl_(std::make_unique<Impl>(predictor, std::move(options))) {
  Impl& s = *impl_;
  const int threads = std::max(1, s.options.threads);
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.http.set_payload_max_length(s.options.max_body_bytes);  // larger bodies get 413
  // httplib closes a keep-alive connection after 5 requests by default; under load the clients
  // then reconnect all the time, against a listen backlog of 5 compiled into Debian's library,
  // and dropped connection attempts wait a second to retry. Keep connections open.
  s.http.set_keep_alive_max_count(1000000);
  // The listening socket, to deepen its backlog after httplib's listen() (see bind()).
  s.http.set_socket_options([&s](socket_t socket) {
    httplib::default_socket_options(socket);
    s.listen_socket = socket;
  });
  s.post("/v1/predict",
         s.route_with_body("/v1/predict", [&s](const httplib::Request&, const std::string& body) {
           return s.predict_counted(body);
         }));
  s.get("/v1/model",
        s.route("/v1/model", [&s](const httplib::Request&) { return s.describe_model(); }));
  s.get("/v1/tasks",
        s.route("/v1/tasks", [&s](const httplib::Request&) { return s.list_tasks(); }));
  s.post("/v1/tasks",
         s.route_with_body("/v1/tasks", [&s](const httplib::Request& r, const std::string& body) {
           return s.load_task(r, body);
         }));
  // Any name (httplib decodes the path first): a task named "a/b", which a pack may give and
  // POST /v1/tasks takes, is unloaded as /v1/tasks/a%2Fb (or /v1/tasks/a/b).
  s.del(R"(/v1/tasks/(.+))", s.route("/v1/tasks/NAME", [&s](const httplib::Request& r) {
    return s.unload_task(r, r.matches[1].str());
  }));
  s.get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(kTryPage, "text/html; charset=utf-8");
  });
  s.get("/healthz", s.route("/healthz", [](const httplib::Request&) {
    return Reply{200, "{\"status\":\"ok\"}"};
  }));
  s.get("/metrics", [&s](const httplib::Request&, httplib::Response& response) {
    response.set_content(
        s.metrics.render(s.batcher.queue_depth(), static_cast<int64_t>(s.predictor.tasks().size())),
        "text/plain; version=0.0.4");
  });
  // httplib's own answers (unknown path, 413 for a large body, ...) get a JSON body too, and a
  // known path asked by a method it does not answer gets 405 and the methods it does (RFC 9110).
  s.http.set_error_handler([&s](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) return;
    const std::string allowed = response.status == 404 ? s.allowed_methods(request.path) : "";
    if (!allowed.empty()) {
      response.status = 405;
      response.set_header("Allow", allowed);
    }
    const std::string message =
        response.status == 413 ? kBodyTooLarge
        : response.status == 405
            ? request.method + " " + request.path + ": this endpoint takes " + allowed
        : response.status == 404 ? "no endpoint " + request.method + " " + request.path
                                 : "HTTP " + std::to_string(response.status);
    response.set_content(error_body(message), "application/json");
  });
}

HttpServer::~HttpServer() = default;

int HttpServer::bind() {
  Impl& s = *impl_;
  int port = s.options.port;
  if (port == 0) {
    port = s.http.bind_to_any_port(s.options.host);
  } else if (!s.http.bind_to_port(s.options.host, port)) {
    port = -1;
  }
  if (port < 0) {
    throw Error("serve: cannot listen on " + s.options.host + ":" + std::to_string(s.options.port) +
                " (in use, or not an address of this machine)");
  }
  // Debian's httplib listens with a backlog of 5: 64 clients connecting at once lose SYNs and
  // retry a second later. listen() again on the bound socket only deepens the queue.
  if (s.listen_socket != INVALID_SOCKET) ::listen(s.listen_socket, SOMAXCONN);
  s.bound = true;
  return port;
}

void HttpServer::serve() {
  if (!impl_->bound) bind();
  impl_->http.listen_after_bind();
}

void HttpServer::stop() {
  impl_->http.stop();
}

}  // namespace adaptertune::serve
