#pragma once
/// @file output_directory.h
/// Checks before a command writes a directory or a file, so that nothing existing is replaced
/// without being asked for, and no output ever lands on an input.

#include <string>
#include <vector>

namespace adaptertune {

/// What a command may do with an output directory that already holds something.
enum class ExistingOutput {
  /// Write only into a missing or empty directory.
  kRefuse,
  /// Continue what is there (a resumed run).
  kResume,
  /// Replace it: clear_output_directory() empties it first.
  kOverwrite,
};

/// The mode of a run's `resume` and `overwrite` options; Error when both are set (one continues
/// what is there, the other replaces it).
ExistingOutput existing_output_mode(bool resume, bool overwrite);

/// A directory a command writes, and what it writes there.
struct OutputDirectory {
  std::string path;
  /// What the directory is, for messages ("run directory", "model directory").
  std::string what;
  /// The names the command writes in it (files and folders). Anything else there means the
  /// directory is not one of ours: it is then never written into nor cleared, whatever `mode`.
  /// Temporaries of an interrupted atomic write (`NAME.tmp.*`) count as the entry's own.
  std::vector<std::string> own_entries;
  /// Name prefixes of files that may sit beside the outputs and are left in place, such as a
  /// model's licence and readme ("LICENSE" covers LICENSE.md): they are neither written, cleared
  /// nor a sign that the directory is someone else's.
  std::vector<std::string> kept_prefixes = {};
};

/// Throws Error (naming the directory and what is in the way) unless the command may write
/// `output` under `mode`: it is missing or holds none of `own_entries`, or `mode` continues or
/// replaces it; either way it holds nothing but `own_entries` and `kept_prefixes`. No entry of
/// `inputs` (files or directories the command reads) may lie in it. Changes nothing on disk.
void check_output_directory(const OutputDirectory& output, ExistingOutput mode,
                            const std::vector<std::string>& inputs);

/// Throws Error unless write_file_atomic() could write file `output` (found before the work whose
/// result it holds, not after): it is not a directory, and the directory it goes in exists.
/// `flag` names it in the message ("--out"). Changes nothing on disk.
void check_file_can_be_written(const std::string& output, const std::string& flag);

/// Throws Error unless make_directories() could make `directory` (a run's checkpoint directory,
/// written only later): it is a directory, or nothing is there and the nearest of its parents that
/// exists is one. `what` names it in the message ("checkpoint directory"). Changes nothing on disk.
void check_directory_can_be_made(const std::string& directory, const std::string& what);

/// Removes `output`'s own entries, leaving its kept files (after check_output_directory() allowed
/// kOverwrite).
void clear_output_directory(const OutputDirectory& output);

/// Throws Error when writing file `output` would replace or lie inside one of `inputs` (the same
/// file under another name included). `flag` names the output in the message ("--out").
void check_not_an_input(const std::string& output, const std::vector<std::string>& inputs,
                        const std::string& flag);

}  // namespace adaptertune
