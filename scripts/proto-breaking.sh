#!/usr/bin/env bash
# `buf breaking`: the proto in the working tree against the proto of main as
# it was before the change under test, read from git (no network).
#
# Which state of main is the baseline:
# - on a branch other than main: the merge base of HEAD and main (`main`, else
#   `origin/main`), i.e. the main the branch started from. Main's own later
#   additions are then not mistaken for removals by the branch.
# - on main itself (a CI clone of main, where HEAD is main's last commit):
#   HEAD~1, so the last commit is what is checked; each commit to main is
#   checked by the CI run on it.
# - no main ref at all: HEAD~1 too.
# Skipped with a message (exit 0) when there is no baseline to read: not a
# git checkout, a single commit, a shallow clone without the parent, or a
# baseline without the proto module.
#
# The baseline is taken out with `git archive` into a temporary folder, which
# also works in a linked worktree (where .git is a file) and needs no clone.
# Run from anywhere inside the repository; extra arguments go to buf.
set -euo pipefail

skip() {
  echo "proto-breaking: skipped: $*" >&2
  exit 0
}

command -v git >/dev/null || skip "git is not installed"
root=$(git rev-parse --show-toplevel 2>/dev/null) || skip "not a git checkout"
cd "$root"

head=$(git rev-parse --verify --quiet 'HEAD^{commit}') || skip "no commit yet"
main=""
for ref in refs/heads/main refs/remotes/origin/main; do
  if main=$(git rev-parse --verify --quiet "$ref^{commit}"); then
    break
  fi
  main=""
done

if [[ -n "$main" && "$main" != "$head" ]]; then
  base=$(git merge-base "$head" "$main" 2>/dev/null) ||
    skip "HEAD and main share no history here (a shallow clone?)"
  what="the merge base with main"
else
  base=$(git rev-parse --verify --quiet 'HEAD~1^{commit}') ||
    skip "HEAD has no parent here (a single commit, or a shallow clone)"
  what="main's previous commit (HEAD~1)"
fi
git cat-file -e "$base:buf.yaml" 2>/dev/null || skip "$base has no buf.yaml"
git cat-file -e "$base:proto" 2>/dev/null || skip "$base has no proto/"

against=$(mktemp -d)
trap 'rm -rf "$against"' EXIT
git archive "$base" buf.yaml proto | tar -x -C "$against"

echo "proto-breaking: checking proto/ against $what, $(git rev-parse --short "$base")" >&2
buf breaking --against "$against" "$@"
