#include "adaptertune/text/sentencepiece_tokenizer.h"

#include <dlfcn.h>

#include <algorithm>
#include <mutex>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "sanitizer_build.h"
#include "sentencepiece_shim.h"
#include "special_tokens.h"
#include "unicode.h"

namespace adaptertune {

// The functions of libadaptertune_sentencepiece.so, loaded once (see sentencepiece_shim.h).
struct SentencePieceApi {
  decltype(&adaptertune_spm_load) load;
  decltype(&adaptertune_spm_free) free;
  decltype(&adaptertune_spm_size) size;
  decltype(&adaptertune_spm_piece_to_id) piece_to_id;
  decltype(&adaptertune_spm_id_to_piece) id_to_piece;
  decltype(&adaptertune_spm_encode) encode;
};

namespace {

// AddressSanitizer and ThreadSanitizer end the process at a dlopen with RTLD_DEEPBIND (it would
// bypass their interceptors; google/sanitizers#611), and without it the two protobufs clash (see
// the shim's header): a build with either has no SentencePiece, and says so.
#if defined(ADAPTERTUNE_ADDRESS_SANITIZER) || defined(ADAPTERTUNE_THREAD_SANITIZER)
constexpr bool kSanitizerRefusesDeepBind = true;
#else
constexpr bool kSanitizerRefusesDeepBind = false;
#endif

const SentencePieceApi& sentencepiece_api() {
  static SentencePieceApi api{};
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    if (kSanitizerRefusesDeepBind) {
      failure = "not in a build with AddressSanitizer or ThreadSanitizer";
      return;
    }
    // The shim sits next to this library (build tree and install prefix alike).
    Dl_info info{};
    std::string directory = ".";
    if (dladdr(reinterpret_cast<void*>(&sentencepiece_api), &info) != 0 && info.dli_fname) {
      std::string self = info.dli_fname;
      auto slash = self.find_last_of('/');
      if (slash != std::string::npos) directory = self.substr(0, slash);
    }
    const std::string path = directory + "/libadaptertune_sentencepiece.so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (handle == nullptr) {
      failure = path + ": " + dlerror();
      return;
    }
    auto symbol = [&](const char* name) {
      void* s = dlsym(handle, name);
      if (s == nullptr && failure.empty()) failure = path + ": missing symbol " + name;
      return s;
    };
    api.load = reinterpret_cast<decltype(api.load)>(symbol("adaptertune_spm_load"));
    api.free = reinterpret_cast<decltype(api.free)>(symbol("adaptertune_spm_free"));
    api.size = reinterpret_cast<decltype(api.size)>(symbol("adaptertune_spm_size"));
    api.piece_to_id =
        reinterpret_cast<decltype(api.piece_to_id)>(symbol("adaptertune_spm_piece_to_id"));
    api.id_to_piece =
        reinterpret_cast<decltype(api.id_to_piece)>(symbol("adaptertune_spm_id_to_piece"));
    api.encode = reinterpret_cast<decltype(api.encode)>(symbol("adaptertune_spm_encode"));
  });
  if (!failure.empty()) throw Error("SentencePiece support is unavailable: " + failure);
  return api;
}

}  // namespace

struct SentencePieceTokenizer::Processor {
  const SentencePieceApi* api = nullptr;
  adaptertune_spm* handle = nullptr;
  ~Processor() {
    if (handle != nullptr) api->free(handle);
  }
  int piece_to_id(const std::string& piece) const {
    return api->piece_to_id(handle, piece.data(), piece.size());
  }
  std::string id_to_piece(int id) const {
    size_t length = 0;
    const char* piece = api->id_to_piece(handle, id, &length);
    return piece ? std::string(piece, length) : std::string();
  }
};

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path,
                                               SentencePieceOptions options)
    : options_(std::move(options)), processor_(std::make_unique<Processor>()) {
  processor_->api = &sentencepiece_api();
  char error[512] = "";
  processor_->handle = processor_->api->load(model_path.c_str(), error, sizeof error);
  if (processor_->handle == nullptr) {
    throw Error(model_path + ": cannot load SentencePiece model: " + error);
  }
  model_bytes_ = read_file(model_path);
  auto special = [&](const std::string& token) {
    const int id = processor_->piece_to_id(token);
    if (processor_->id_to_piece(id) != token) {
      throw Error(model_path + ": SentencePiece model has no special token \"" + token + "\"");
    }
    special_tokens_.push_back(token);
    return static_cast<int64_t>(id);
  };
  unk_id_ = special(options_.unk_token);
  pad_id_ = special(options_.pad_token);
  cls_id_ = special(options_.cls_token);
  sep_id_ = special(options_.sep_token);
  mask_id_ = special(options_.mask_token);
  detail::sort_longest_first(special_tokens_);
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::string SentencePieceTokenizer::preprocess(const std::string& text) const {
  std::u32string collapsed;
  for (char32_t c : detail::utf8_decode(text, "tokenizer input")) {
    if (c == 0) continue;
    const bool space = detail::is_python_space(c);  // " ".join(text.split()), as in Python
    if (space && (collapsed.empty() || collapsed.back() == U' ')) continue;
    collapsed.push_back(space ? U' ' : c);
  }
  while (!collapsed.empty() && collapsed.back() == U' ') collapsed.pop_back();
  std::string out = detail::utf8_encode(collapsed);
  for (const char* quote : {"``", "''"}) {
    for (size_t at = out.find(quote); at != std::string::npos; at = out.find(quote, at + 1)) {
      out.replace(at, 2, "\"");
    }
  }
  if (!options_.keep_accents) {
    std::u32string stripped;
    for (char32_t c : detail::utf8_decode(detail::nfkd(out), "tokenizer input")) {
      if (!detail::is_combining_mark(c)) stripped.push_back(c);
    }
    out = detail::utf8_encode(stripped);
  }
  if (options_.lowercase) {
    out = detail::utf8_encode(detail::python_lower(detail::utf8_decode(out, "tokenizer input")));
  }
  return out;
}

std::vector<std::string> SentencePieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  detail::split_on_special_tokens(
      text, special_tokens_,
      [&](const std::string& raw) {
        const std::string segment = preprocess(raw);
        if (!segment.empty()) {
          std::vector<char> buffer(segment.size() * 8 + 64);
          long needed = processor_->api->encode(processor_->handle, segment.data(), segment.size(),
                                                buffer.data(), buffer.size());
          if (needed > static_cast<long>(buffer.size())) {
            buffer.resize(static_cast<size_t>(needed));
            needed = processor_->api->encode(processor_->handle, segment.data(), segment.size(),
                                             buffer.data(), buffer.size());
          }
          if (needed < 0) throw Error("SentencePiece could not encode the input");
          for (size_t at = 0; at < static_cast<size_t>(needed);) {
            std::string piece(buffer.data() + at);
            at += piece.size() + 1;
            // SentencePiece returns the surface text of an unknown piece; the vocabulary's name for
            // it is the unknown token.
            out.push_back(processor_->piece_to_id(piece) == unk_id_ ? options_.unk_token
                                                                    : std::move(piece));
          }
        }
      },
      [&](const std::string& special) { out.push_back(special); });
  return out;
}

int64_t SentencePieceTokenizer::token_to_id(const std::string& token) const {
  return processor_->piece_to_id(token);
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                std::to_string(vocab_size()) + ")");
  }
  return processor_->id_to_piece(static_cast<int>(id));
}

int64_t SentencePieceTokenizer::vocab_size() const {
  return processor_->api->size(processor_->handle);
}

}  // namespace adaptertune
