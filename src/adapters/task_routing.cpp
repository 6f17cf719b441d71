#include "adaptertune/adapters/task_routing.h"

#include <map>

#include <ATen/ATen.h>

#include "adaptertune/error.h"

namespace adaptertune {

TaskRouting TaskRouting::whole_batch(std::optional<std::string> task) {
  TaskRouting routing;
  routing.groups_.push_back(Group{std::move(task), {}, {}});
  return routing;
}

const TaskRouting& TaskRouting::base() {
  static const TaskRouting routing = whole_batch(std::nullopt);
  return routing;
}

TaskRouting TaskRouting::per_example(const std::vector<std::optional<std::string>>& tasks,
                                     c10::Device device) {
  if (tasks.empty()) throw Error("TaskRouting: no examples to route");
  TaskRouting routing;
  routing.batch_size_ = static_cast<int64_t>(tasks.size());
  std::map<std::optional<std::string>, size_t> group_of;
  for (size_t i = 0; i < tasks.size(); ++i) {
    auto [it, added] = group_of.emplace(tasks[i], routing.groups_.size());
    if (added) routing.groups_.push_back(Group{tasks[i], {}, {}});
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

at::Tensor TaskRouting::select(const at::Tensor& x, size_t g) const {
  const Group& group = groups_.at(g);
  if (!group.rows.defined()) return x;
  return x.index_select(0, group.rows.to(x.device()));
}

at::Tensor TaskRouting::per_group(const std::function<at::Tensor(size_t)>& group_result,
                                  const at::Tensor& like) const {
  if (is_whole_batch()) return group_result(0);
  std::vector<at::Tensor> parts;
  for (size_t g = 0; g < groups_.size(); ++g) parts.push_back(group_result(g));
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

}  // namespace adaptertune
