#!/usr/bin/env bash
# One-command set-up for a fresh Debian / Raspberry Pi OS machine.
#   ./shepherd.sh demo   install what is missing, build, and start `shepherd run --demo`
#   ./shepherd.sh test   install what is missing, build, and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

install_system_packages() {
  local need=()
  for pkg in pkg-config libudev-dev gcc "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  [ ${#need[@]} -eq 0 ] && return
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing ${need[*]} (needed to build the serial/udev support)"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
}

install_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || {
      echo "Rust is not installed: install it from https://rustup.rs (curl ... | sh), then run this again" >&2
      exit 1
    }
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# esptool 5.6.0 in its own virtualenv under target/ (tests/esptool.rs looks there).
install_esptool() {
  local venv=target/esptool-venv
  if [ -x "$venv/bin/esptool" ] && "$venv/bin/esptool" version 2>/dev/null | grep -q "5\.6\.0"; then
    return
  fi
  echo "installing esptool 5.6.0 into $venv (for the simulator's esptool test)"
  mkdir -p target
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q esptool==5.6.0
}

case "${1:-demo}" in
  demo)
    install_system_packages
    install_rust
    shift || true
    cargo build --release
    exec ./target/release/shepherd run --demo "$@"
    ;;
  test)
    # mosquitto: the broker the MQTT tests start on a loopback port; chromium and its driver
    # for the browser test; python3-venv (and pip) for esptool, which tests/esptool.rs runs
    # against the simulated ESP32s.
    install_system_packages mosquitto chromium chromium-driver python3-venv python3-pip
    install_rust
    install_esptool
    # In CI a missing esptool is a failure, not a skip.
    if [ "${CI:-}" = "true" ]; then
      export SHEPHERD_REQUIRE_ESPTOOL=1
    fi
    cargo test --all-targets -- --test-threads 2
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
