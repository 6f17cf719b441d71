#include "adaptertune/adapters/adapter_set.h"

#include <algorithm>
#include <set>

#include "adaptertune/adapters/task_routing.h"
#include "adaptertune/error.h"
#include "text/unicode.h"

namespace adaptertune {
namespace {

std::string known_list(const std::vector<std::string>& names) {
  if (names.empty()) return "the model has no tasks";
  std::string out = "the model's tasks are";
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", \"" : " \"") + names[i] + "\"";
  return out;
}

}  // namespace

void AdapterSet::add(TaskEntry entry) {
  // Names go into JSON (adapter_config.json, run.json, replies): valid UTF-8 only.
  detail::check_utf8(entry.name, "adapter name");
  if (entry.name.empty() || entry.name.find('.') != std::string::npos) {
    throw Error("adapter name \"" + entry.name + "\" must be non-empty and contain no '.'");
  }
  if (contains(entry.name)) throw Error("adapter \"" + entry.name + "\" already exists");
  if (entry.is_fusion()) {
    if (entry.fused.size() < 2) throw Error("a fusion needs at least two adapters");
    for (const auto& adapter : entry.fused) {
      if (at(adapter).is_fusion()) {
        throw Error("fusion \"" + entry.name + "\": \"" + adapter +
                    "\" is a fusion; a fusion fuses adapters only");
      }
    }
    if (std::set<std::string>(entry.fused.begin(), entry.fused.end()).size() !=
        entry.fused.size()) {
      throw Error("fusion \"" + entry.name + "\" names an adapter twice");
    }
  } else if (entry.name.find(',') != std::string::npos) {
    throw Error("adapter name \"" + entry.name +
                "\" must contain no ',' (fusions are named by their adapters joined by ',')");
  }
  entries_.push_back(std::move(entry));
}

void AdapterSet::remove(const std::string& name) {
  at(name);  // throws when absent
  for (const auto& entry : entries_) {
    if (std::find(entry.fused.begin(), entry.fused.end(), name) != entry.fused.end()) {
      throw Error("adapter \"" + name + "\" is fused by \"" + entry.name +
                  "\": remove the fusion first");
    }
  }
  if (active_ == name || std::find(below_.begin(), below_.end(), name) != below_.end()) {
    active_.reset();
    below_.clear();
  }
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const TaskEntry& entry) { return entry.name == name; }),
                 entries_.end());
}

bool AdapterSet::contains(const std::string& name) const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [&](const TaskEntry& entry) { return entry.name == name; });
}

const TaskEntry& AdapterSet::at(const std::string& name) const {
  for (const auto& entry : entries_) {
    if (entry.name == name) return entry;
  }
  throw Error("no adapter named \"" + name + "\" (" + known_list(names()) + ")");
}

TaskEntry& AdapterSet::at(const std::string& name) {
  return const_cast<TaskEntry&>(static_cast<const AdapterSet&>(*this).at(name));
}

std::vector<std::string> AdapterSet::names() const {
  std::vector<std::string> out;
  for (const auto& entry : entries_) out.push_back(entry.name);
  return out;
}

void AdapterSet::set_active(const std::optional<std::string>& name) {
  check_known(name);
  active_ = name;
  below_.clear();
}

void AdapterSet::set_active_stack(const std::vector<std::string>& adapters) {
  Stack(adapters).check();
  for (const auto& adapter : adapters) at(adapter);
  active_ = adapters.back();
  below_.assign(adapters.begin(), adapters.end() - 1);
}

std::vector<std::string> AdapterSet::active_stack() const {
  std::vector<std::string> out = below_;
  if (active_) out.push_back(*active_);
  return out;
}

void AdapterSet::check_known(const std::optional<std::string>& task) const {
  if (task) at(*task);
}

}  // namespace adaptertune
