#include "adaptertune/io/output_directory.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>

#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"

namespace adaptertune {
namespace {

// The names in `directory` (none when it does not exist); Error when it is not a directory.
std::vector<std::string> entries_of(const std::string& directory) {
  struct stat st {};
  if (::stat(directory.c_str(), &st) != 0) return {};
  if (!S_ISDIR(st.st_mode)) throw Error(directory + ": exists and is not a directory");
  std::vector<std::string> names;
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) throw Error(directory + ": cannot read the directory");
  while (dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

bool is_kept(const std::string& name, const std::vector<std::string>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& prefix) { return name.rfind(prefix, 0) == 0; });
}

bool is_own(const std::string& name, const std::vector<std::string>& own) {
  return std::any_of(own.begin(), own.end(), [&](const std::string& entry) {
    return name == entry || name.rfind(entry + ".tmp.", 0) == 0;
  });
}

// The absolute path without links, of `path` or (when it does not exist yet) of its parent.
std::string resolved(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  if (real) return real.get();
  const auto slash = path.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (parent.empty() || parent == path) return path;
  return resolved(parent) + "/" + name;
}

// The absolute path with its directories resolved but its last component kept as it is (a link
// inside a directory is in it, wherever it points).
std::string located(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const auto slash = trimmed.find_last_of('/');
  const std::string name = slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
  if (name == "." || name == "..") return resolved(trimmed);
  const std::string parent = slash == std::string::npos ? "." : trimmed.substr(0, slash);
  const std::string base = resolved(parent.empty() ? "/" : parent);
  return (base == "/" ? "" : base) + "/" + name;
}

bool prefix_of(const std::string& d, const std::string& p) {
  return p == d || (p.size() > d.size() && p.compare(0, d.size(), d) == 0 && p[d.size()] == '/');
}

// Whether `path` is `directory` or lies in it, by where it is and by where it leads.
bool same_or_inside(const std::string& path, const std::string& directory) {
  return prefix_of(resolved(directory), resolved(path)) ||
         prefix_of(located(directory), located(path)) ||
         prefix_of(resolved(directory), located(path));
}

std::string listing(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 4; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 4) out += ", ...";
  return out;
}

}  // namespace

ExistingOutput existing_output_mode(bool resume, bool overwrite) {
  if (resume && overwrite) {
    throw Error("resume continues the run and overwrite replaces it: choose one");
  }
  return resume      ? ExistingOutput::kResume
         : overwrite ? ExistingOutput::kOverwrite
                     : ExistingOutput::kRefuse;
}

void check_output_directory(const OutputDirectory& output, ExistingOutput mode,
                            const std::vector<std::string>& inputs) {
  if (output.path.empty()) throw Error("an output " + output.what + " is required");
  for (const auto& input : inputs) {
    if (!input.empty() && same_or_inside(input, output.path)) {
      throw Error(output.path + ": the output " + output.what + " holds an input (" + input +
                  "); choose another output directory");
    }
  }
  // A run writes its output directory at its end too: a path that cannot be one is found now.
  check_directory_can_be_made(output.path, output.what);
  std::vector<std::string> names;
  for (const auto& name : entries_of(output.path)) {
    if (is_own(name, output.own_entries)) {
      names.push_back(name);
    } else if (!is_kept(name, output.kept_prefixes)) {
      throw Error(output.path + ": holds \"" + name + "\", which is not part of a " + output.what +
                  "; it is neither written into nor cleared: choose another output directory");
    }
  }
  if (names.empty()) return;
  if (mode == ExistingOutput::kRefuse) {
    throw Error(output.path + ": the " + output.what + " exists (" + listing(names) +
                "); continue it with --resume or replace it with --overwrite");
  }
}

void check_file_can_be_written(const std::string& output, const std::string& flag) {
  if (directory_exists(output)) {
    throw Error(flag + " " + output + ": a directory, where a file was expected");
  }
  const auto slash = output.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "."
                             : slash == 0               ? "/"
                                                        : output.substr(0, slash);
  if (!directory_exists(parent)) {
    throw Error(flag + " " + output + ": no directory " + parent + " to write it in");
  }
}

void check_directory_can_be_made(const std::string& directory, const std::string& what) {
  std::string path = directory;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  for (bool itself = true;; itself = false) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) return;
      throw Error(directory + ": " +
                  (itself ? std::string("exists and is not a directory")
                          : "cannot be made: " + path + " is not a directory") +
                  " (the " + what + ")");
    }
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return;  // the working directory is a directory
    if (slash == 0) return;                  // so is the root
    path.resize(slash);
  }
}

void clear_output_directory(const OutputDirectory& output) {
  for (const auto& name : entries_of(output.path)) {
    if (is_own(name, output.own_entries)) remove_tree(output.path + "/" + name);
  }
}

void check_not_an_input(const std::string& output, const std::vector<std::string>& inputs,
                        const std::string& flag) {
  struct stat out {};
  const bool exists = ::stat(output.c_str(), &out) == 0;
  for (const auto& input : inputs) {
    if (input.empty()) continue;
    struct stat in {};
    const bool same_file = exists && ::stat(input.c_str(), &in) == 0 && in.st_dev == out.st_dev &&
                           in.st_ino == out.st_ino;
    if (same_file || same_or_inside(output, input)) {
      throw Error(flag + " " + output + " would write over an input (" + input +
                  "); choose another output path");
    }
  }
}

}  // namespace adaptertune
