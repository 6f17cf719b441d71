#!/usr/bin/env bash
# Checks the README's set-up on a minimal Debian 12: debootstraps one (variant minbase: apt, no
# compiler, no git, no sudo) into a folder, copies the committed tree into it, and runs the
# README's two commands there, as root or as a user with sudo. Needs root and network access to
# a Debian mirror on the host; takes 10-20 minutes on 2 cores, most of it apt and the build.
#
#   sudo bash scripts/check_fresh_debian.sh [root|user] [WORK_DIR]
#
# WORK_DIR (default /var/tmp/adaptertune-fresh-debian) is removed and made anew. The log of the
# run inside is WORK_DIR/run.log; the exit status is that of the two commands.
set -euo pipefail
mode=${1:-root}
work=${2:-/var/tmp/adaptertune-fresh-debian}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$mode" in root | user) ;; *)
  echo "usage: $0 [root|user] [WORK_DIR]" >&2
  exit 2
  ;;
esac
if [ "$(id -u)" -ne 0 ]; then
  echo "check_fresh_debian.sh: needs root (debootstrap, chroot, mounts)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap

system=$work/debian12
mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" || true; done
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work"
include=()
[ "$mode" = user ] && include=(--include=sudo)
debootstrap --variant=minbase "${include[@]}" bookworm "$system" "$mirror" >"$work/debootstrap.log"
for d in proc sys dev dev/pts; do
  mount --bind "/$d" "$system/$d"
  mounted+=("$system/$d")
done
cp /etc/resolv.conf "$system/etc/resolv.conf"

if [ "$mode" = user ]; then
  chroot "$system" useradd -m -s /bin/bash dev
  echo "dev ALL=(ALL) NOPASSWD:ALL" >"$system/etc/sudoers.d/dev"
  chmod 440 "$system/etc/sudoers.d/dev"
  home=/home/dev
else
  home=/root
fi
mkdir -p "$system$home/adaptertune"
git -C "$root_dir" archive HEAD | tar -x -C "$system$home/adaptertune"
readme_commands='cd ~/adaptertune && bash scripts/quickstart.sh && bash scripts/test.sh'
clean_env=(/usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  LANG=C.UTF-8 HOME="$home")
if [ "$mode" = user ]; then
  chroot "$system" chown -R dev:dev "$home/adaptertune"
  chroot "$system" "${clean_env[@]}" su - dev -c "$readme_commands" >"$work/run.log" 2>&1
else
  chroot "$system" "${clean_env[@]}" bash -c "$readme_commands" >"$work/run.log" 2>&1
fi
echo "check_fresh_debian.sh: the README's two commands passed on a minimal Debian 12 as $mode"
