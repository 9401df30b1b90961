#!/usr/bin/env bash
# Cross-builds deepnet for aarch64 and runs its Criterion suite under qemu-user
# (Debian 12 host, as root, with only Debian's registry reachable). See docs/arm64.md.
#
#   tools/setup-arm64.sh            install the cross toolchain, sysroot, cross files, binfmt
#   tools/setup-arm64.sh --build    ... then configure and build build-arm64/
#   tools/setup-arm64.sh --test     ... then run the whole suite on qemu's default CPU and
#                                   on QEMU_CPU=cortex-a53 (what CI runs)
#
# Every step is idempotent: a second run only rebuilds what changed.
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

stage=setup
case "${1:-}" in
  '' | --setup) stage=setup ;;
  --build) stage=build ;;
  --test) stage=test ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

repo=$(cd "$(dirname "$0")/.." && pwd)
sysroot=$repo/sysroot-arm64
builddir=$repo/build-arm64
qemu_cpus=(default cortex-a53) # default: QEMU_CPU unset (qemu-aarch64's 'max'; empty is an error)

log() { printf '== setup-arm64: %s\n' "$*" >&2; }
die() { printf 'setup-arm64: %s\n' "$*" >&2; exit 1; }

# Only installing packages and registering binfmt_misc need root: once done, anyone may
# rebuild and test.
need_root() { [[ $(id -u) == 0 ]] || die "$1 needs root: run this once as root"; }

apt_opts=(-q -o DPkg::Lock::Timeout=600 -o APT::Sandbox::User=root)
export DEBIAN_FRONTEND=noninteractive

# Host side: the cross compilers and qemu. The cross gcc brings the arm64 libc,
# libgcc and libgomp under /usr/aarch64-linux-gnu, which is also qemu's QEMU_LD_PREFIX.
host_pkgs=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static
           meson ninja-build pkg-config)

install_host_packages() {
  local missing=() p
  for p in "${host_pkgs[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *'ok installed' ]] || missing+=("$p")
  done
  if [[ $'\n'$(dpkg --print-foreign-architectures)$'\n' != *$'\n'arm64$'\n'* ]]; then
    need_root "dpkg --add-architecture arm64"
    log "adding the arm64 architecture to dpkg"
    dpkg --add-architecture arm64
    need_update=1
  fi
  # apt knows arm64 packages only after an update that followed --add-architecture.
  if [[ -n ${need_update:-} ]] || ((${#missing[@]})) ||
     ! apt-cache show libcriterion-dev:arm64 >/dev/null 2>&1; then
    need_root "apt-get update"
    log "apt-get update"
    apt-get "${apt_opts[@]}" update >/dev/null
  fi
  if ((${#missing[@]})); then
    need_root "installing ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The arm64 libraries to build and link against, with their recursive dependencies,
# minus what the cross toolchain already has (libc, libgcc, libgomp, libstdc++, kernel
# headers) and build-host tools (pkg-config runs on the host). apt cannot install
# libcriterion-dev for amd64 and arm64 together, hence download + dpkg-deb -x.
sysroot_roots=(libcriterion-dev libhwloc-dev zlib1g-dev)
sysroot_skip=" libc6 libc6-dev libc-dev-bin libgcc-s1 libgomp1 libstdc++6 linux-libc-dev
  libcrypt1 libcrypt-dev libnsl2 libnsl-dev libtirpc-dev rpcsvc-proto gcc-12-base
  pkg-config pkgconf pkgconf-bin libpkgconf3 "

sysroot_package_list() {
  local -A seen=()
  local level=("${sysroot_roots[@]}") next p
  while ((${#level[@]})); do
    next=()
    for p in "${level[@]}"; do
      [[ -n ${seen[$p]:-} || $sysroot_skip == *[[:space:]]$p[[:space:]]* ]] && continue
      seen[$p]=1
      next+=("$p:arm64")
    done
    ((${#next[@]})) || break
    # One apt-cache call per level: each call loads the whole cache (about a second).
    mapfile -t level < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
      --no-breaks --no-replaces --no-enhances "${next[@]}" |
      sed -n 's/^  |\{0,1\}\(Pre\)\{0,1\}Depends: \([^<>]*\):arm64$/\2/p' | sort -u)
  done
  printf '%s\n' "${!seen[@]}" | sort
}

build_sysroot() {
  local pkgs debs=$sysroot/.debs stamp=$sysroot/.stamp uris want
  mapfile -t pkgs < <(sysroot_package_list)
  # 'URI' file size hash, one line per package, for the exact candidate versions.
  uris=$(cd /tmp && apt-get "${apt_opts[@]}" download --print-uris "${pkgs[@]/%/:arm64}")
  want=$(awk '{print $2}' <<<"$uris" | sort)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    log "sysroot-arm64/ is up to date (${#pkgs[@]} packages)"
    return
  fi
  mkdir -p "$debs"
  local missing=() f
  for f in $want; do [[ -f $debs/$f ]] || missing+=("$f"); done
  if ((${#missing[@]})); then
    log "downloading ${#missing[@]} arm64 packages"
    local names=() n
    for n in "${missing[@]}"; do names+=("${n%%_*}:arm64"); done
    (cd "$debs" && apt-get "${apt_opts[@]}" download "${names[@]}" >/dev/null)
  fi
  log "unpacking ${#pkgs[@]} packages into sysroot-arm64/"
  find "$sysroot" -mindepth 1 -maxdepth 1 ! -name .debs -exec rm -rf {} +
  for f in $want; do dpkg-deb -x "$debs/$f" "$sysroot"; done
  # Absolute links (libfoo.so -> /lib/...) would point at the host: make them relative.
  local link target
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$sysroot$target")" "$link"
  done < <(find "$sysroot" -path "$debs" -prune -o -type l -lname '/*' -print0)
  # Drop debs no longer wanted, so the cache does not grow with each Debian point release.
  find "$debs" -name '*.deb' -printf '%f\n' | sort | comm -23 - <(echo "$want") |
    while IFS= read -r f; do rm -f "$debs/$f"; done
  echo "$want" >"$stamp"
}

# Meson 1.0 cross files cannot name their own folder (@DIRNAME@ came in 1.1): this small
# generated file holds the absolute sysroot path; tools/cross/aarch64-linux-gnu.ini uses it.
write_cross_constants() {
  local f=$sysroot/cross-paths.ini
  local text="# Generated by tools/setup-arm64.sh: pass as the first --cross-file.
[constants]
sysroot = '$sysroot'"
  [[ -f $f && $(cat "$f") == "$text" ]] || echo "$text" >"$f"
}

# Criterion re-executes the test binary for each test, so the kernel must know to start
# aarch64 ELF files with qemu; Debian's qemu-user-static ships the rule but nothing
# registers it in a container without systemd-binfmt or binfmt-support.
register_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc
  if [[ ! -e $dir/register ]]; then
    need_root "mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc "$dir" ||
      die "cannot mount binfmt_misc on $dir (needs a privileged container)"
  fi
  if [[ ! -e $dir/qemu-aarch64 ]]; then
    need_root "registering qemu-aarch64 with binfmt_misc"
    log "registering qemu-aarch64 with binfmt_misc"
    cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$dir/register"
  fi
  if [[ $(head -n1 "$dir/qemu-aarch64") != enabled ]]; then
    need_root "enabling qemu-aarch64 in binfmt_misc"
    echo 1 >"$dir/qemu-aarch64"
  fi
}

setup_all() {
  install_host_packages
  build_sysroot
  write_cross_constants
  register_binfmt
}

cross_files=(--cross-file "$sysroot/cross-paths.ini" --cross-file "$repo/tools/cross/aarch64-linux-gnu.ini")

build() {
  if [[ ! -f $builddir/build.ninja ]]; then
    rm -rf "$builddir"
    log "meson setup build-arm64"
    meson setup "$builddir" "$repo" "${cross_files[@]}" -Dbench=disabled
  fi
  log "ninja -C build-arm64"
  ninja -C "$builddir"
}

count_results() { grep -o '"result": "[A-Z]*"' "$1" | grep -c -E "$2" || true; }

run_tests() {
  local cpu rc=0 passed=0 failed=0 log
  for cpu in "${qemu_cpus[@]}"; do
    log "meson test under qemu-aarch64, QEMU_CPU=$cpu"
    if [[ $cpu == default ]]; then
      env -u QEMU_CPU meson test -C "$builddir" --print-errorlogs --num-processes 1 || rc=1
    else
      QEMU_CPU=$cpu meson test -C "$builddir" --print-errorlogs --num-processes 1 || rc=1
    fi
    # Keep each CPU's log: the next run overwrites testlog.txt.
    log=$builddir/meson-logs/testlog
    cp "$log.txt" "$log-$cpu.txt"
    cp "$log.json" "$log-$cpu.json"
    passed=$((passed + $(count_results "$log.json" '"(OK|EXPECTEDFAIL)"')))
    failed=$((failed + $(count_results "$log.json" '"(FAIL|TIMEOUT|UNEXPECTEDPASS|ERROR)"')))
  done
  # Test programs, over both CPUs (each program holds many Criterion tests).
  echo "arm64: $passed passed, $failed failed"
  return $rc
}

setup_all
[[ $stage == setup ]] && exit 0
build
[[ $stage == build ]] && exit 0
run_tests
