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
