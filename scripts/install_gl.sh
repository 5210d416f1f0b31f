#!/usr/bin/env bash
# Install the Debian/Ubuntu packages that headless MiniWorld (vase_rl.envs.world) needs: pyglet with
# PYGLET_HEADLESS=1 opens an EGL context on Mesa's software renderer (llvmpipe), no X display.
#   libegl1          libEGL.so.1   (glvnd EGL loader; pyglet headless)
#   libegl-mesa0     Mesa's EGL vendor library (glvnd picks it through egl_vendor.d/50_mesa.json)
#   libgl1           libGL.so.1    (pyglet.gl entry points)
#   libgl1-mesa-dri  the swrast/llvmpipe driver that does the rendering
#   libglu1-mesa     libGLU.so.1   (gluPerspective/gluLookAt/quadrics)
#   libfreetype6     libfreetype.so.6 (pyglet.font, loaded when MiniWorld creates its text label)
# Idempotent: does nothing when every package is installed. Without root it only prints the command.
# Usage: scripts/install_gl.sh            (exit 0 when installed or nothing to do; 1 if apt-get fails)
set -euo pipefail

PACKAGES=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglu1-mesa libfreetype6)

if ! command -v dpkg >/dev/null 2>&1; then
  echo "[install_gl] not a Debian-based system: install Mesa's EGL, GL, GLU and FreeType libraries" \
       "(libEGL.so.1, libGL.so.1, libGLU.so.1, libfreetype.so.6) with your package manager." >&2
  exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "[install_gl] all present: ${PACKAGES[*]}"
  exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "[install_gl] missing: ${missing[*]}" >&2
  echo "[install_gl] not root; run: sudo apt-get update && sudo $cmd" >&2
  exit 0
fi

echo "[install_gl] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
$cmd
