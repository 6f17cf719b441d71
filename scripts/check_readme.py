#!/usr/bin/env python3
"""Keeps README.md honest: compiles and links each of its C++ snippets against the installed
adaptertune package, and runs the command lines of every ```sh block marked
<!-- readme-check: run --> (with the built `adaptertune` first on PATH, in a scratch directory
that sees the repository's data/ and models/).

    python3 scripts/check_readme.py BUILD_DIR INSTALL_PREFIX
Each C++ snippet is a translation unit of its own: #include lines and namespace aliases stay at
file scope, and a snippet that is not already made of function definitions is wrapped in one.
"""
import os
import re
import shutil
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build_dir, prefix = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
work = os.path.join(build_dir, "readme-check")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()

blocks = re.findall(r"(<!-- readme-check: run -->\n)?```(\w+)\n(.*?)```", readme, re.S)
cpp = [code for _, lang, code in blocks if lang == "cpp"]
shell = [code for marker, lang, code in blocks if lang == "sh" and marker]
if not cpp or not shell:
    sys.exit("check_readme: found %d C++ snippets and %d runnable sh blocks; expected some of each"
             % (len(cpp), len(shell)))

# C++: one translation unit per snippet, linked into one program.
project = os.path.join(work, "snippets")
os.makedirs(project)
sources = []
for i, code in enumerate(cpp):
    top = [l for l in code.splitlines() if l.startswith("#include") or re.match(r"namespace \w+ =", l)]
    body = "\n".join(l for l in code.splitlines() if l not in top)
    if not re.search(r"^[A-Za-z_].*\(", body, re.M):  # statements, not definitions
        body = "void readme_snippet_%d() {\n%s\n}\n" % (i, body)
    name = "snippet_%d.cpp" % i
    with open(os.path.join(project, name), "w") as f:
        f.write("#include <iostream>\n" + "\n".join(top) + "\n" + body)
    sources.append(name)
with open(os.path.join(project, "main.cpp"), "w") as f:
    f.write("int main() { return 0; }\n")
with open(os.path.join(project, "CMakeLists.txt"), "w") as f:
    f.write("cmake_minimum_required(VERSION 3.16)\nproject(readme_snippets CXX)\n"
            "set(CMAKE_CXX_STANDARD 17)\nfind_package(adaptertune CONFIG REQUIRED)\n"
            "add_executable(readme_snippets main.cpp %s)\n"
            "target_link_libraries(readme_snippets PRIVATE adaptertune::adaptertune)\n"
            % " ".join(sources))
subprocess.run(["cmake", "-S", project, "-B", os.path.join(project, "build"), "-G", "Ninja",
                "-DCMAKE_PREFIX_PATH=" + prefix], check=True, stdout=subprocess.DEVNULL)
subprocess.run(["cmake", "--build", os.path.join(project, "build")], check=True)
print("check_readme: %d C++ snippets compile and link" % len(cpp))

# Command lines, in order (later lines use what earlier ones wrote).
scratch = os.path.join(work, "run")
os.makedirs(scratch)
for shared in ("data", "models"):
    os.symlink(os.path.join(root, shared), os.path.join(scratch, shared))
env = dict(os.environ, PATH=os.path.join(build_dir, "tools", "cli") + os.pathsep + os.environ["PATH"])
count = 0
for code in shell:
    for line in code.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        result = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=scratch, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            sys.exit("check_readme: README line failed (exit %d): %s\n%s" %
                     (result.returncode, line, result.stderr[-2000:]))
        count += 1
print("check_readme: %d README command lines ran" % count)
