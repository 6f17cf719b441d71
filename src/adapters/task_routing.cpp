#include "adaptertune/adapters/task_routing.h"

#include <cctype>
#include <map>
#include <set>

#include <ATen/ATen.h>

#include "adaptertune/adapters/adapter_fusion.h"
#include "adaptertune/error.h"

namespace adaptertune {
namespace {

// The group that runs `stack` (an empty one: the plain base).
TaskRouting::Group group_for(const Stack& stack) {
  if (!stack.adapters.empty()) stack.check();
  TaskRouting::Group group;
  group.stack = stack.adapters;
  if (!stack.adapters.empty()) group.task = stack.adapters.back();
  return group;
}

}  // namespace

namespace {

// An adapter's name, or a fusion's ("a,b") as the block that names it, "Fuse(a, b)".
std::string describe_step(const std::string& step) {
  if (step.find(',') == std::string::npos) return step;
  std::string out = "Fuse(";
  for (char c : step) out += c == ',' ? std::string(", ") : std::string(1, c);
  return out + ")";
}

}  // namespace

Stack Stack::on_top_of(const std::vector<std::string>& below, const std::string& adapter) {
  std::vector<std::string> stack = below;
  stack.push_back(adapter);
  return Stack(std::move(stack));
}

std::string Stack::describe() const {
  if (adapters.size() == 1) return describe_step(adapters.front());
  std::string out = "Stack(";
  for (size_t i = 0; i < adapters.size(); ++i) out += (i ? ", " : "") + describe_step(adapters[i]);
  return out + ")";
}

TaskRouting TaskRouting::whole_batch(std::optional<std::string> task) {
  TaskRouting routing;
  Group group;
  if (task) group.stack = {*task};
  group.task = std::move(task);
  routing.groups_.push_back(std::move(group));
  return routing;
}

void Stack::check() const {
  if (adapters.empty()) throw Error("a Stack needs at least one adapter");
  std::set<std::string> seen;
  for (const auto& adapter : adapters) {
    if (!seen.insert(adapter).second) {
      throw Error("adapter \"" + adapter + "\" appears twice in " + describe());
    }
  }
}

TaskRouting TaskRouting::stack(const Stack& stack) {
  stack.check();
  TaskRouting routing;
  routing.groups_.push_back(group_for(stack));
  return routing;
}

const TaskRouting& TaskRouting::base() {
  static const TaskRouting routing = whole_batch(std::nullopt);
  return routing;
}

TaskRouting TaskRouting::from_rows(const std::vector<Stack>& stacks, c10::Device device) {
  if (stacks.empty()) throw Error("TaskRouting: no examples to route");
  TaskRouting routing;
  routing.batch_size_ = static_cast<int64_t>(stacks.size());
  std::map<std::vector<std::string>, size_t> group_of;
  for (size_t i = 0; i < stacks.size(); ++i) {
    auto [it, added] = group_of.emplace(stacks[i].adapters, routing.groups_.size());
    if (added) routing.groups_.push_back(group_for(stacks[i]));
    routing.groups_[it->second].row_list.push_back(static_cast<int64_t>(i));
  }
  if (routing.groups_.size() == 1) return routing;  // one task for all: no gathering at all
  std::vector<int64_t> order;
  const auto index_options = at::TensorOptions().dtype(at::kLong);
  for (auto& group : routing.groups_) {
    group.rows = at::tensor(group.row_list, index_options).to(device);
    order.insert(order.end(), group.row_list.begin(), group.row_list.end());
  }
  // order[k] is the batch row of the k-th concatenated row; restore_ inverts it.
  std::vector<int64_t> inverse(order.size());
  for (size_t k = 0; k < order.size(); ++k) inverse[static_cast<size_t>(order[k])] = int64_t(k);
  routing.restore_ = at::tensor(inverse, index_options).to(device);
  return routing;
}

TaskRouting TaskRouting::per_example(const std::vector<std::optional<std::string>>& tasks,
                                     c10::Device device) {
  std::vector<Stack> stacks;
  stacks.reserve(tasks.size());
  for (const auto& task : tasks) {
    stacks.push_back(task ? Stack(*task) : Stack(std::vector<std::string>{}));
  }
  return from_rows(stacks, device);
}

TaskRouting TaskRouting::per_example_stacks(const std::vector<Stack>& stacks, c10::Device device) {
  return from_rows(stacks, device);
}

TaskRouting TaskRouting::batch_split(const std::vector<Stack>& parts,
                                     const std::vector<int64_t>& sizes, c10::Device device) {
  if (parts.empty() || parts.size() != sizes.size()) {
    throw Error("BatchSplit: " + std::to_string(parts.size()) + " parts but " +
                std::to_string(sizes.size()) + " sizes (one size per part)");
  }
  std::vector<Stack> rows;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].adapters.empty())
      throw Error("BatchSplit: part " + std::to_string(i) + " is empty");
    if (sizes[i] < 1) {
      throw Error("BatchSplit: size " + std::to_string(sizes[i]) + " of part " +
                  parts[i].describe() + " must be at least 1");
    }
    rows.insert(rows.end(), static_cast<size_t>(sizes[i]), parts[i]);
  }
  return from_rows(rows, device);
}

TaskRouting TaskRouting::parallel(const std::vector<Stack>& branches, int64_t batch_size) {
  if (branches.empty()) throw Error("Parallel: needs at least one branch");
  if (batch_size < 1) throw Error("Parallel: the batch needs at least one example");
  TaskRouting routing;
  routing.batch_size_ = batch_size;
  routing.replicas_ = static_cast<int64_t>(branches.size());
  std::set<std::vector<std::string>> seen;
  for (const auto& branch : branches) {
    if (branch.adapters.empty()) throw Error("Parallel: a branch is empty");
    if (!seen.insert(branch.adapters).second) {
      throw Error("Parallel: branch " + branch.describe() + " appears twice");
    }
    routing.groups_.push_back(group_for(branch));
  }
  return routing;
}

at::Tensor TaskRouting::select(const at::Tensor& x, size_t g) const {
  const Group& group = groups_.at(g);
  if (replicas_ > 1) {
    if (x.size(0) == batch_size_) return x;  // not replicated yet: every branch runs every row
    if (x.size(0) != output_batch_size()) {
      throw Error("Parallel: " + std::to_string(x.size(0)) + " rows, expected " +
                  std::to_string(batch_size_) + " or " + std::to_string(output_batch_size()));
    }
    return x.narrow(0, static_cast<int64_t>(g) * batch_size_, batch_size_);
  }
  if (!group.rows.defined()) return x;
  return x.index_select(0, group.rows.to(x.device()));
}

at::Tensor TaskRouting::per_group(const std::function<at::Tensor(size_t)>& group_result,
                                  const at::Tensor& like) const {
  if (is_whole_batch()) return group_result(0);
  std::vector<at::Tensor> parts;
  for (size_t g = 0; g < groups_.size(); ++g) parts.push_back(group_result(g));
  if (replicas_ > 1) return at::cat(parts, 0);  // branch by branch, as parallel() promises
  return at::cat(parts, 0).index_select(0, restore_.to(like.device()));
}

at::Tensor TaskRouting::map(const at::Tensor& x,
                            const std::function<at::Tensor(const std::optional<std::string>&,
                                                           const at::Tensor&)>& fn) const {
  return per_group([&](size_t g) { return fn(groups_[g].task, select(x, g)); }, x);
}

at::Tensor TaskRouting::map(
    const at::Tensor& x, const at::Tensor& y,
    const std::function<at::Tensor(const std::optional<std::string>&, const at::Tensor&,
                                   const at::Tensor&)>& fn) const {
  return per_group([&](size_t g) { return fn(groups_[g].task, select(x, g), select(y, g)); }, x);
}

at::Tensor TaskRouting::map_groups(
    const at::Tensor& x, const at::Tensor& y,
    const std::function<at::Tensor(const Group&, const at::Tensor&, const at::Tensor&)>& fn) const {
  return per_group([&](size_t g) { return fn(groups_[g], select(x, g), select(y, g)); }, x);
}

TaskRouting AdapterSetup::routing(int64_t batch_size, c10::Device device) const {
  switch (kind) {
    case Kind::kStack:
      return TaskRouting::stack(children.at(0));
    case Kind::kParallel:
      return TaskRouting::parallel(children, batch_size);
    case Kind::kBatchSplit:
      return TaskRouting::batch_split(children, batch_sizes, device);
  }
  throw Error("AdapterSetup: unknown kind");
}

namespace {

// A recursive-descent reader of setups; errors name the setup and the offset.
class SetupParser {
 public:
  explicit SetupParser(const std::string& text) : text_(text) {}

  AdapterSetup parse() {
    AdapterSetup setup;
    const std::string head = name();
    if (peek('(') && (head == "Parallel" || head == "BatchSplit")) {
      setup.kind =
          head == "Parallel" ? AdapterSetup::Kind::kParallel : AdapterSetup::Kind::kBatchSplit;
      branches(setup, head);
    } else {
      setup.children.push_back(branch(head, "at the top"));
    }
    skip_space();
    if (at_ < text_.size()) fail("unexpected \"" + text_.substr(at_, 10) + "\"");
    return setup;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("adapter setup \"" + text_ + "\": " + what + " at character " +
                std::to_string(at_ + 1));
  }
  [[noreturn]] void block_error(const std::string& block, const std::string& where) const {
    if (block == "Stack" || block == "Parallel" || block == "BatchSplit" || block == "Fuse") {
      fail(block + " is not supported " + where +
           " in this version (a Fuse holds adapters; a Stack holds adapters and Fuse blocks; "
           "Parallel and BatchSplit hold adapters, Stacks and Fuse blocks)");
    }
    fail("unknown block \"" + block + "\" (expected Stack, Fuse, Parallel or BatchSplit)");
  }
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  bool peek(char c) {
    skip_space();
    return at_ < text_.size() && text_[at_] == c;
  }
  void expect(char c) {
    if (!peek(c)) fail(std::string("expected '") + c + "'");
    ++at_;
  }
  std::string name() {
    skip_space();
    const size_t start = at_;
    while (at_ < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[at_])) ||
                                  text_[at_] == '_' || text_[at_] == '-')) {
      ++at_;
    }
    if (at_ == start) fail("expected an adapter name");
    return text_.substr(start, at_ - start);
  }
  // What a branch of Parallel or BatchSplit, or a whole setup, may be after its first name
  // `item`: an adapter, a Stack or a Fuse; any other block is an Error naming `where`.
  Stack branch(const std::string& item, const std::string& where) {
    if (!peek('(')) return Stack(item);
    if (item == "Stack") return stack_body();
    if (item == "Fuse") return Stack(fuse_body());
    block_error(item, where);
  }
  // After "Stack": "(a, Fuse(b, c), ...)" of adapter names and Fuse blocks.
  Stack stack_body() {
    expect('(');
    std::vector<std::string> adapters;
    do {
      const std::string item = name();
      if (!peek('(')) {
        adapters.push_back(item);
      } else if (item == "Fuse") {
        adapters.push_back(fuse_body());
      } else {
        block_error(item, "inside a Stack");
      }
    } while (peek(',') && (++at_, true));
    expect(')');
    return Stack(std::move(adapters));
  }
  // After "Fuse": "(a, b, ...)" of adapter names; the fusion's name (fusion_name()).
  std::string fuse_body() {
    expect('(');
    std::vector<std::string> adapters;
    do {
      const std::string item = name();
      if (peek('(')) block_error(item, "inside a Fuse");
      adapters.push_back(item);
    } while (peek(',') && (++at_, true));
    expect(')');
    if (adapters.size() < 2) fail("a Fuse needs at least two adapters");
    return fusion_name(adapters);
  }
  // After "Parallel" or "BatchSplit": adapters or Stacks, and BatchSplit's batch_sizes=[...].
  void branches(AdapterSetup& setup, const std::string& block) {
    expect('(');
    do {
      const std::string item = name();
      if (item == "batch_sizes" && peek('=')) {
        if (setup.kind != AdapterSetup::Kind::kBatchSplit) fail("batch_sizes outside BatchSplit");
        ++at_;
        expect('[');
        do {
          skip_space();
          const size_t start = at_;
          while (at_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[at_]))) ++at_;
          if (at_ == start || at_ - start > 9) fail("expected a batch size");
          setup.batch_sizes.push_back(std::stoll(text_.substr(start, at_ - start)));
        } while (peek(',') && (++at_, true));
        expect(']');
        continue;
      }
      setup.children.push_back(branch(item, "inside " + block));
    } while (peek(',') && (++at_, true));
    expect(')');
    if (setup.kind == AdapterSetup::Kind::kBatchSplit && setup.batch_sizes.empty()) {
      fail("BatchSplit needs batch_sizes=[...]");
    }
  }

  const std::string& text_;
  size_t at_ = 0;
};

}  // namespace

AdapterSetup parse_adapter_setup(const std::string& text) {
  return SetupParser(text).parse();
}

}  // namespace adaptertune
