#include "adaptertune/io/safetensors.h"

#include <fstream>
#include <sstream>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "test_util.h"

namespace adaptertune {
namespace {

const std::string kCorpus = std::string(ADAPTERTUNE_TEST_DATA_DIR) + "/safetensors/";

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "adaptertune_safetensors_" + name;
}

TEST(Safetensors, RoundTripsEveryDtypeWithMetadata) {
  torch::manual_seed(3);
  NamedTensors tensors = {
      {"f32", torch::randn({3, 4})},
      {"f64", torch::randn({2}, torch::kDouble)},
      {"f16", torch::randn({5, 1}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 3, 2}).to(torch::kBFloat16)},
      {"i64", torch::randint(-1000, 1000, {7}, torch::kLong)},
      {"i32", torch::randint(-1000, 1000, {2, 2}, torch::kInt)},
      {"i16", torch::randint(-100, 100, {3}, torch::kShort)},
      {"i8", torch::randint(-100, 100, {3}, torch::kChar)},
      {"u8", torch::randint(0, 255, {4}, torch::kByte)},
      {"bool", torch::rand({6}) > 0.5},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::zeros({0, 4})},
      {"strided", torch::randn({4, 6}).t()},  // non-contiguous input is written contiguously
  };
  const std::string path = temp_path("roundtrip.safetensors");
  save_safetensors(path, tensors, {{"format", "pt"}, {"step", "12"}});
  std::map<std::string, std::string> metadata;
  NamedTensors back = load_safetensors(path, &metadata);
  EXPECT_EQ(metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"step", "12"}}));
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), tensors[i].second.scalar_type()) << back[i].first;
    EXPECT_TRUE(torch::equal(back[i].second, tensors[i].second)) << back[i].first;
  }
  SafetensorsFile file(path);
  EXPECT_TRUE(file.contains("bf16"));
  EXPECT_FALSE(file.contains("missing"));
  EXPECT_ERROR_CONTAINS(file.tensor("missing"), "no tensor named \"missing\"");
  // The data buffer starts 8-byte aligned, as the reference writer leaves it.
  EXPECT_EQ(file.header().data_start % 8, 0u);
}

TEST(Safetensors, ReadsAFileWrittenByteByByte) {
  SafetensorsFile file(kCorpus + "valid.safetensors");
  EXPECT_EQ(file.names(), (std::vector<std::string>{"w", "ids"}));
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_TRUE(torch::equal(file.tensor("w"), torch::tensor({{1.0f, -2.0f}, {3.5f, 0.25f}})));
  EXPECT_TRUE(torch::equal(file.tensor("ids"), torch::tensor({7, -9}, torch::kLong)));
}

// Every malformed file of the corpus gets an Error naming the file and what is wrong, never a
// crash (the same corpus runs under ASan/UBSan in the `sanitize` ctest label).
TEST(Safetensors, MalformedCorpusGetsClearErrors) {
  std::ifstream manifest(kCorpus + "EXPECTED.tsv");
  ASSERT_TRUE(manifest) << "missing " << kCorpus << "EXPECTED.tsv";
  std::string line;
  std::getline(manifest, line);  // header
  int cases = 0;
  while (std::getline(manifest, line)) {
    const auto tab = line.find('\t');
    const std::string name = line.substr(0, tab);
    const std::string fragment = line.substr(tab + 1);
    const std::string path = kCorpus + name;
    ++cases;
    if (fragment.empty()) {
      EXPECT_NO_THROW(SafetensorsFile{path}) << name;
      continue;
    }
    try {
      SafetensorsFile file(path);
      ADD_FAILURE() << name << ": expected an error containing \"" << fragment << "\"";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path), std::string::npos) << name << ": " << message;
      EXPECT_NE(message.find(fragment), std::string::npos) << name << ": " << message;
    }
  }
  EXPECT_GE(cases, 20);
}

TEST(Safetensors, WriterRejectsWhatTheFormatCannotHold) {
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"a", torch::ones({1})}, {"a", torch::ones({1})}}),
                        "tensor \"a\" given twice");
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"c", torch::ones({1}, torch::kComplexFloat)}}),
                        "tensor \"c\" has dtype");
  EXPECT_ERROR_CONTAINS(serialize_safetensors({{"__metadata__", torch::ones({1})}}),
                        "is not a tensor name");
  EXPECT_ERROR_CONTAINS(SafetensorsFile(temp_path("does_not_exist")), "cannot open");
}

TEST(Safetensors, TruncatingAValidFileAnywhereIsAnError) {
  const std::string bytes =
      serialize_safetensors({{"a", torch::randn({3, 3})}, {"b", torch::ones({2}, torch::kLong)}});
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
    EXPECT_THROW(parse_safetensors_header(data, cut, "cut"), Error) << "cut at " << cut;
  }
  EXPECT_NO_THROW(parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()),
                                           bytes.size(), "whole"));
}

}  // namespace
}  // namespace adaptertune
