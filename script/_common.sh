# shellcheck shell=bash
# Sourced by the script/* entry points: repo root, PATH, and small helpers.
# (Not executable on its own.)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# rustup installs into ~/.cargo/bin, which non-login shells (CI, sudo) may lack.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  export PATH
fi

# The one cargo target dir every script shares (respects an exported CARGO_TARGET_DIR).
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
export CARGO_TARGET_DIR

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  _BOLD=$'\033[1m'; _RED=$'\033[31m'; _GREEN=$'\033[32m'; _RESET=$'\033[0m'
else
  _BOLD=""; _RED=""; _GREEN=""; _RESET=""
fi

section() {
  printf '\n%s==> %s%s\n' "$_BOLD" "$*" "$_RESET"
}

info() {
  printf '    %s\n' "$*"
}

die() {
  printf '%serror:%s %s\n' "$_RED" "$_RESET" "$*" >&2
  exit 1
}

# Name of the cdylib cargo produces, and of the file Ruby loads.
case "$(uname -s)" in
  Darwin) CARGO_DYLIB="libmsgpack_rs.dylib"; RUBY_DLIB="msgpack_rs.bundle" ;;
  *) CARGO_DYLIB="libmsgpack_rs.so"; RUBY_DLIB="msgpack_rs.so" ;;
esac

# The Ruby to build against and test with (rb-sys reads $RUBY too). In the Ruby
# matrix's chroots it names that Ruby's binary (/usr/bin/ruby3.4, ...).
RUBY="${RUBY:-ruby}"
export RUBY

# check NAME CMD...: run one check, record its result and duration; report_checks
# prints them all and fails if any failed. Every check runs even after one fails.
CHECK_RESULTS=()
CHECK_FAILURES=0
check() {
  local name="$1" start=$SECONDS rc=0
  shift
  section "$name"
  printf '    $ %s\n' "$*"
  "$@" || rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    CHECK_RESULTS+=("${_GREEN}ok${_RESET}     ${took}s  $name")
  else
    CHECK_RESULTS+=("${_RED}FAILED${_RESET} ${took}s  $name (exit $rc)")
    CHECK_FAILURES=$((CHECK_FAILURES + 1))
  fi
}

# report_checks TITLE START_SECONDS: the summary; returns non-zero if a check failed.
report_checks() {
  section "$1 ($((SECONDS - $2))s)"
  local line
  for line in "${CHECK_RESULTS[@]}"; do
    printf '    %s\n' "$line"
  done
  printf '\nchecks: %d passed, %d failed\n' "$((${#CHECK_RESULTS[@]} - CHECK_FAILURES))" "$CHECK_FAILURES"
  if [ "$CHECK_FAILURES" -gt 0 ]; then
    printf '\n%s%d check(s) failed%s\n' "$_RED" "$CHECK_FAILURES" "$_RESET"
    return 1
  fi
  printf '\n%sall checks passed%s\n' "$_GREEN" "$_RESET"
}
