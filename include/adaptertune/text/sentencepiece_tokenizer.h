#pragma once
/// @file sentencepiece_tokenizer.h
/// SentencePiece models (ALBERT's `spiece.model`) behind the Tokenizer interface.

#include <memory>
#include <string>
#include <vector>

#include "adaptertune/text/tokenizer.h"

namespace adaptertune {

/// Options of SentencePieceTokenizer (Hugging Face AlbertTokenizer's defaults).
struct SentencePieceOptions {
  bool lowercase = true;
  /// Keep accents; when false they are removed (NFKD, combining marks dropped).
  bool keep_accents = false;
  std::string unk_token = "<unk>";
  std::string pad_token = "<pad>";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string mask_token = "[MASK]";
};

/// Tokenizes with libsentencepiece after ALBERT's preprocessing: whitespace runs collapsed, ``
/// and '' turned into ", accents removed (unless keep_accents) and lower-casing (if configured).
/// Special tokens written in the text are kept whole. libsentencepiece is loaded privately from
/// `libadaptertune_sentencepiece.so` next to the library: Debian's build carries its own protobuf,
/// which crashes a process that also loads LibTorch's.
class SentencePieceTokenizer : public Tokenizer {
 public:
  /// Loads a serialized SentencePiece model; throws Error naming the file on failure or when a
  /// special token is missing from it.
  explicit SentencePieceTokenizer(const std::string& model_path, SentencePieceOptions options = {});
  ~SentencePieceTokenizer() override;

  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t token_to_id(const std::string& token) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t vocab_size() const override;
  int64_t cls_id() const override { return cls_id_; }
  int64_t sep_id() const override { return sep_id_; }
  int64_t pad_id() const override { return pad_id_; }
  int64_t unk_id() const override { return unk_id_; }
  int64_t mask_id() const override { return mask_id_; }
  bool lowercase() const override { return options_.lowercase; }
  VocabularyFile vocabulary_file() const override { return {"spiece.model", model_bytes_}; }

 private:
  std::string preprocess(const std::string& text) const;

  SentencePieceOptions options_;
  struct Processor;
  std::unique_ptr<Processor> processor_;
  std::vector<std::string> special_tokens_;
  /// The serialized model, kept to write it beside a model (it is a few hundred KB).
  std::string model_bytes_;
  int64_t cls_id_, sep_id_, pad_id_, unk_id_, mask_id_;
};

}  // namespace adaptertune
