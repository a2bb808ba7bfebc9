#!/usr/bin/env bash
# Every test of portowner, from a clean clone on Debian 12:
#   installs what is missing (apt-get), builds, runs the unit tests, the churn
#   test and the fuzz replays under valgrind (make check), the live tests
#   against ss, the real collectd daemon, a two-daemon fleet, the Grafana
#   dashboard against a real write_prometheus scrape, the Prometheus rules
#   and scrape job against a real Prometheus (Debian's package, unpacked
#   with dpkg -x: installing it would start a service), the Debian package
#   (pytest), each fuzz target for a fixed seed and run count (make
#   fuzz-smoke), clang-format and the C dialect (make check-format), and make
#   distcheck (the tarball's own make check, which also imports every pytest
#   suite from the unpacked tree); ends with "N passed, N failed".
# Tests that need root (network namespaces, exec as nobody, dpkg -i) skip
# with the reason printed when run as another user.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

packages=(build-essential autoconf automake libtool pkg-config
  collectd-core collectd-dev collectd-utils libyajl-dev libpcre2-dev libcmocka-dev
  valgrind iproute2 lsof netbase procps python3 python3-pytest clang-format
  clang libclang-rt-14-dev debhelper dpkg-dev libmicrohttpd12 libprotobuf-c1
  libbpf-dev bpftool groff-base man-db)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing: ${missing[*]}"
  $sudo apt-get update -qq || exit 1
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null || exit 1
fi

log=$(mktemp -d /tmp/portowner-tests.XXXXXX)
passed=0
failed=0
step() { # name, command...: one counted step whose output is kept
  local name=$1
  shift
  echo "== $name"
  if "$@"; then
    echo "== $name: ok"
    return 0
  fi
  echo "== $name: FAILED"
  return 1
}

step build bash -c 'autoreconf -fi >/dev/null 2>&1 && ./configure -q &&
  make -j"$(nproc)" >/dev/null' || {
  echo "0 passed, 1 failed"
  exit 1
}

# One style: clang-format and the C dialect (sizeof(x), !p), every C file.
if step "make check-format" make -s check-format; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

# Unit tests: each cmocka case counts once.
step "make check (unit tests under valgrind)" bash -c \
  "make -j$(nproc) check >'$log/check.out' 2>&1"
check_rc=$?
grep -E '^(PASS|FAIL|ERROR):' "$log/check.out"
for f in tests/test_*.log; do
  [ -f "$f" ] || continue
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$f" | tail -n 1)
  q=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$f" |
    tail -n 1)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${q:-0}))
done
# The fuzz replay drivers count once each.
passed=$((passed + $(grep -cE '^PASS: tests/fuzz/' "$log/check.out")))
if [ $check_rc -ne 0 ]; then
  tail -n 80 tests/test-suite.log 2>/dev/null
  # A crash or valgrind error fails a binary without a cmocka count.
  failed=$((failed + $(grep -cE '^(FAIL|ERROR):' "$log/check.out")))
  # So does a failure outside the test binaries (the pytest import check,
  # a build error): make check failed, so something counts as failed.
  if ! grep -qE '^(FAIL|ERROR):' "$log/check.out"; then
    tail -n 40 "$log/check.out"
    failed=$((failed + 1))
  fi
fi

# Live tests: real listeners, ss, and the real collectd daemon.
make -s tests/po-listen tests/soak/po-churn >/dev/null
export PO_BUILDDIR=$top
# Prometheus and promtool for tests/fleet/test_prometheus.py: Debian's
# package unpacked, not installed. If it cannot be had, the tests fail (the
# variable is set either way): CI runs them.
export PO_PROMETHEUS_DIR="$log/prometheus/usr/bin"
(cd "$log" && { apt-get download prometheus >/dev/null 2>&1 ||
  { $([ "$(id -u)" -eq 0 ] || echo sudo) apt-get update -qq &&
    apt-get download prometheus >/dev/null; }; } &&
  dpkg -x prometheus_*.deb "$log/prometheus") ||
  echo "== could not download Debian's prometheus package: its tests will fail"
step "pytest (live tests)" /usr/bin/python3 -m pytest -p no:cacheprovider -rxs \
  tests/live tests/daemon tests/hostile tests/fleet tests/deb tests/privilege \
  tests/soak tests/docs 2>&1 |
  tee "$log/pytest.out"
summary=$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' \
  "$log/pytest.out" | tail -n 1)
p=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
q=$(echo "$summary" | grep -oE '[0-9]+ (failed|errors?)' |
  awk '{ s += $1 } END { print s + 0 }')
[ -n "$summary" ] || q=1 # pytest did not finish
passed=$((passed + ${p:-0}))
failed=$((failed + ${q:-0}))

# Each libFuzzer target from a fixed seed for a fixed number of runs, after
# replaying its corpus and regressions; a crash, an out-of-memory or a hang
# fails it.
step "make fuzz-smoke" bash -c "set -o pipefail; make fuzz-smoke 2>&1 |
  tee '$log/fuzz.out'"
fuzz_summary=$(sed -n '/^== fuzz summary/,$p' "$log/fuzz.out")
p=$(echo "$fuzz_summary" | grep -cE ': [0-9]+ executions')
q=$(echo "$fuzz_summary" | grep -c ': FAILED')
[ -n "$fuzz_summary" ] || q=1 # the targets did not build
passed=$((passed + p))
failed=$((failed + q))

# The release tarball builds and passes its own make check.
if step "make distcheck" bash -c "make -j$(nproc) distcheck >'$log/distcheck.out' 2>&1"; then
  passed=$((passed + 1))
else
  tail -n 40 "$log/distcheck.out"
  failed=$((failed + 1))
fi

echo "logs: $log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
