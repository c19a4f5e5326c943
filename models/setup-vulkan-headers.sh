#!/usr/bin/env bash
# Puts Vulkan headers new enough for whisper.cpp's Vulkan backend in .deps/vulkan, once,
# when the system's are too old: for `cargo build --features vulkan` only.
#
# Why: whisper.cpp's Vulkan backend uses VK_EXT_layer_settings (Vulkan headers 1.3.272
# and later); Debian 12 ships 1.3.239. Debian 13's libvulkan-dev is fetched from the
# Debian archive the system already uses and unpacked here, not installed: its headers
# only, the system's Vulkan loader stays. .cargo/config.toml points whisper.cpp's CMake
# at .deps/vulkan/usr/include (CMAKE_INCLUDE_PATH), ahead of /usr/include.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prefix="$root/.deps/vulkan"
suite=trixie
has_layer_settings() { grep -qs VkLayerSettingEXT "$1/vulkan/vulkan_core.h"; }

if has_layer_settings /usr/include; then
  echo "The system's Vulkan headers are new enough"
  exit 0
fi
if has_layer_settings "$prefix/usr/include"; then
  echo "Vulkan headers already in $prefix"
  exit 0
fi
[ -f /usr/include/vulkan/vulkan_core.h ] \
  || { echo "error: the Vulkan development files are needed: apt-get install libvulkan-dev glslc" >&2; exit 1; }

# The archive the system installs Debian from (a mirror, a proxy), with the newer suite.
archive=$(apt-cache policy | awk '$3 ~ /^[a-z]+\/main$/ && $2 ~ /^https?:/ && $2 !~ /security/ { print $2; exit }')
[ -n "$archive" ] || { echo "error: no Debian archive found in apt's sources" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/deb"
echo "deb $archive $suite main" >"$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
echo "Fetching Debian $suite's Vulkan headers (libvulkan-dev) from $archive"
apt-get "${apt_opts[@]}" update -qq
(cd "$work/deb" && apt-get "${apt_opts[@]}" download -qq "libvulkan-dev/$suite")
rm -rf "$prefix"
dpkg-deb -x "$work"/deb/libvulkan-dev_*.deb "$prefix"
has_layer_settings "$prefix/usr/include" \
  || { echo "error: $suite's Vulkan headers lack VK_EXT_layer_settings too" >&2; exit 1; }
echo "Vulkan headers $(dpkg-deb -f "$work"/deb/libvulkan-dev_*.deb Version) in $prefix"
