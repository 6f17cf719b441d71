#include "adaptertune/format.h"

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "adaptertune/error.h"
#include "test_util.h"

namespace adaptertune {
namespace {

TEST(Format, GroupsDigitsInThrees) {
  EXPECT_EQ(with_commas(0), "0");
  EXPECT_EQ(with_commas(999), "999");
  EXPECT_EQ(with_commas(1000), "1,000");
  EXPECT_EQ(with_commas(11072770), "11,072,770");
  EXPECT_EQ(with_commas(-123), "-123");
  EXPECT_EQ(with_commas(-1234567), "-1,234,567");
}

TEST(Format, ShowsDurationsAsHoursMinutesAndSeconds) {
  EXPECT_EQ(format_duration(0), "0:00:00");
  EXPECT_EQ(format_duration(59.99), "0:00:59");
  EXPECT_EQ(format_duration(3725.9), "1:02:05");
  EXPECT_EQ(format_duration(100 * 3600 + 1), "100:00:01");
  // No estimate yet (a rate of zero gives infinity, an empty window NaN): no time, not garbage.
  EXPECT_EQ(format_duration(-5), "0:00:00");
  EXPECT_EQ(format_duration(std::nan("")), "0:00:00");
  EXPECT_EQ(format_duration(HUGE_VAL), "0:00:00");
}

TEST(Format, ShowsNumbersWithSixSignificantDigits) {
  EXPECT_EQ(format_number(16), "16");
  EXPECT_EQ(format_number(0.001), "0.001");
  EXPECT_EQ(format_number(1.0 / 3.0), "0.333333");
  EXPECT_EQ(format_number(1e300), "1e+300");  // not the 301 digits of std::to_string
  EXPECT_EQ(format_number(-2.5e-7), "-2.5e-07");
  EXPECT_EQ(format_number(HUGE_VAL), "inf");
  EXPECT_EQ(format_number(std::nan("")), "nan");
}

TEST(Format, JoinsListsWithTheSeparatorBetweenParts) {
  EXPECT_EQ(joined({}), "");
  EXPECT_EQ(joined({"sst2"}), "sst2");
  EXPECT_EQ(joined({"sst2", "mrpc", "rte"}), "sst2, mrpc, rte");
  // An empty part keeps its place (a join by "is the output empty yet" would lose it).
  EXPECT_EQ(joined({"", "b"}), ", b");
  EXPECT_EQ(joined({"a", "b"}, " or "), "a or b");
}

TEST(Format, WritesJsonWithInvalidUtf8BytesReplaced) {
  // A path whose name is not UTF-8 (POSIX names are bytes), inside an object as run.json has it.
  const std::string path = "/runs/\xff-data/caf\xe9";
  const nlohmann::json record = {{"model_dir", path}, {"steps", 3}};
  EXPECT_THROW(record.dump(), nlohmann::json::type_error);  // what json_text() is there for
  EXPECT_EQ(json_text(record),
            "{\"model_dir\":\"/runs/\xef\xbf\xbd-data/caf\xef\xbf\xbd\",\"steps\":3}");
  // Valid UTF-8 stays as it is (not \u escapes), and the indent applies; ordered_json keeps order.
  const nlohmann::ordered_json ordered = {{"z", "caf\xc3\xa9"}, {"a", 1}};
  EXPECT_EQ(json_text(ordered), "{\"z\":\"caf\xc3\xa9\",\"a\":1}");
  EXPECT_EQ(json_text(ordered, 2), "{\n  \"z\": \"caf\xc3\xa9\",\n  \"a\": 1\n}");
  // What it writes reads back.
  EXPECT_EQ(nlohmann::json::parse(json_text(record))["model_dir"],
            "/runs/\xef\xbf\xbd-data/caf\xef\xbf\xbd");
}

// A long message keeps its start and its end around how much was left out, never splitting a
// UTF-8 sequence; a short one stays as it is.
TEST(Format, ElidesTheMiddleOfALongMessage) {
  EXPECT_EQ(elided("no task \"x\"", 12), "no task \"x\"");
  EXPECT_EQ(elided(std::string(4096, 'a')), std::string(4096, 'a'));
  const std::string name(1000000, 'n');
  const std::string message = "requests.jsonl:1: no task \"" + name + "\" (loaded: SST-2)";
  const std::string shown = elided(message);
  EXPECT_LT(shown.size(), 2100u);
  EXPECT_EQ(shown.rfind("requests.jsonl:1: no task \"nnn", 0), 0u) << shown.substr(0, 40);
  EXPECT_EQ(shown.substr(shown.size() - 20), "nnn\" (loaded: SST-2)");
  // What is shown and what was left out add up to the message.
  const size_t open = shown.find("... (");
  const size_t close = shown.find(" bytes left out) ...");
  ASSERT_TRUE(open != std::string::npos && close != std::string::npos) << shown;
  std::string count = shown.substr(open + 5, close - open - 5);
  count.erase(std::remove(count.begin(), count.end(), ','), count.end());
  const size_t marker = close + std::string(" bytes left out) ...").size() - open;
  EXPECT_EQ(shown.size() - marker + std::stoul(count), message.size()) << shown;
  // Two-byte characters: whichever byte a cut falls on, it keeps whole characters (the head's cut
  // falls inside one in the first text, the tail's in the second).
  std::string accents;
  for (int i = 0; i < 3000; ++i) accents += "\xc3\xa9";
  for (const std::string& text : {"xy" + accents, "x" + accents + "z"}) {
    const std::string shown = elided(text, 4096);
    for (size_t i = 0; i < shown.size(); ++i) {
      if (shown[i] == '\xc3') {
        EXPECT_EQ(shown[i + 1], '\xa9') << "a character cut at " << i;
      } else if (shown[i] == '\xa9') {
        EXPECT_EQ(shown[i - 1], '\xc3') << "a character cut at " << i;
      }
    }
  }
}

// Error's message is cut as elided() cuts it, and one quoted in another (a path and a line before
// it, as readers wrap the errors of what they call) is not cut again, so its count stays.
TEST(Format, ErrorMessagesQuotingAHugeInputAreElidedOnce) {
  const std::string name(1000000, 'n');
  const Error inner("no task \"" + name + "\" (loaded: SST-2)");
  const std::string message = inner.what();
  EXPECT_EQ(message, elided("no task \"" + name + "\" (loaded: SST-2)"));
  EXPECT_LT(message.size(), 2048u);
  EXPECT_NE(message.find(" bytes left out) ..."), std::string::npos) << message.substr(0, 40);
  const std::string where = "/data/" + std::string(1500, 'd') + "/requests.jsonl:1: ";
  const Error wrapped(where + inner.what());
  EXPECT_EQ(std::string(wrapped.what()), where + message);
  const std::string short_message = "config.json: key 'hidden_size': expected an integer";
  EXPECT_EQ(std::string(Error(short_message).what()), short_message);
}

// JSON from outside may nest arrays and objects kMaxJsonNesting deep, no deeper; brackets inside
// strings (escaped quotes included) are text, and the error names the source and the byte.
TEST(Format, RefusesJsonNestedDeeperThanTheLimit) {
  auto nested = [](int depth, const std::string& inside = "1") {
    std::string text;
    for (int i = 0; i < depth; ++i) text += i % 2 ? "{\"k\":" : "[";
    text += inside;
    for (int i = depth - 1; i >= 0; --i) text += i % 2 ? "}" : "]";
    return text;
  };
  EXPECT_NO_THROW(check_json_nesting(nested(kMaxJsonNesting), "deep.json"));
  EXPECT_TRUE(nlohmann::json::parse(nested(kMaxJsonNesting)).is_array());  // valid JSON
  EXPECT_ERROR_CONTAINS(check_json_nesting(nested(kMaxJsonNesting + 1), "deep.json"),
                        "deep.json: JSON nested deeper than 100 levels of arrays and objects (at "
                        "byte " +
                            std::to_string(nested(kMaxJsonNesting).find('1')) + ")");
  EXPECT_ERROR_CONTAINS(check_json_nesting("[[[" + std::string(200, '[') + "", ""),
                        "JSON nested deeper than 100 levels of arrays and objects (at byte 100)");
  // Siblings do not add up: only the depth counts.
  std::string siblings = "[";
  for (int i = 0; i < 1000; ++i) siblings += (i ? "," : "") + nested(50);
  EXPECT_NO_THROW(check_json_nesting(siblings + "]", "siblings"));
  // Brackets in strings, after escaped quotes and backslashes too, are not nesting.
  const std::string brackets(500, '[');
  EXPECT_NO_THROW(check_json_nesting(nested(99, "\"" + brackets + "\""), "s"));
  EXPECT_NO_THROW(check_json_nesting(nested(99, "\"\\\"" + brackets + "\""), "s"));
  EXPECT_ANY_THROW(check_json_nesting(nested(99, "\"\\\\\"" + brackets), "s"));
  // A million levels: refused at once, without recursion.
  EXPECT_ANY_THROW(check_json_nesting(std::string(1000000, '['), "a million"));
}

}  // namespace
}  // namespace adaptertune
