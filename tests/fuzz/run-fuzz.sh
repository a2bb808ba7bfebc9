#!/usr/bin/env bash
# Builds every libFuzzer target of tests/fuzz with clang
# -fsanitize=fuzzer,address,undefined and runs each for a bounded time.
#
#   tests/fuzz/run-fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target: the argument, else $FUZZ_SECONDS, else 60. TARGET:
# fuzz_proc_net ... (default: every tests/fuzz/fuzz_*.c). Builds into
# $FUZZ_OUT (default ./tests/fuzz/out, under the current directory: the build
# directory when make calls it). Each target first replays its regressions
# (tests/fuzz/regressions/<target>), then fuzzes from its seed corpus
# (tests/fuzz/corpus/<target>, read only; new inputs go to
# $FUZZ_OUT/corpus/<target>). Prints per target the executions
# (libFuzzer's stat::number_of_executed_units) and exits 1 when a target
# crashed, leaked, timed out or violated an invariant, naming the input it
# saved: copy that file to tests/fuzz/regressions/<target>/ and fix the bug.
#
# Environment: CLANG (default clang), FUZZ_SECONDS, FUZZ_OUT, YAJL_CFLAGS and
# YAJL_LIBS (default from pkg-config yajl), PCRE2_CFLAGS and PCRE2_LIBS
# (default from pkg-config libpcre2-8), FUZZ_EXTRA (more libFuzzer flags,
# e.g. -jobs=2 or -seed=1).
set -uo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-${FUZZ_SECONDS:-60}}
[ $# -gt 0 ] && shift
case $seconds in
'' | *[!0-9]*)
  echo "run-fuzz.sh: bad SECONDS '$seconds': expected a whole number" >&2
  exit 2
  ;;
esac
clang=${CLANG:-clang}
out=${FUZZ_OUT:-$PWD/tests/fuzz/out}
yajl_cflags=${YAJL_CFLAGS-$(pkg-config --cflags yajl 2>/dev/null)}
yajl_libs=${YAJL_LIBS-$(pkg-config --libs yajl 2>/dev/null || echo -lyajl)}
pcre2_cflags=${PCRE2_CFLAGS-$(pkg-config --cflags libpcre2-8 2>/dev/null)}
pcre2_libs=${PCRE2_LIBS-$(pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)}

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for f in "$src"/tests/fuzz/fuzz_*.c; do
    targets+=("$(basename "$f" .c)")
  done
fi

if ! command -v "$clang" >/dev/null 2>&1; then
  echo "run-fuzz.sh: $clang not found: on Debian install clang and libclang-rt-14-dev" >&2
  exit 1
fi

cflags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -I"$src/include"
  -Wall -Wextra -Werror -fno-omit-frame-pointer -fno-sanitize-recover=all)
# The collectd-free core: every plugin/*.c but the glue and the command.
core=()
for f in "$src"/plugin/*.c; do
  case $(basename "$f") in
  portowner.c | dump.c) ;;
  *) core+=("$(basename "$f" .c)") ;;
  esac
done

rm -rf "$out/bin"
mkdir -p "$out/bin/core" || exit 1
echo "== building ${#targets[@]} fuzz targets with $clang into $out/bin"
objs=()
for c in "${core[@]}"; do
  # shellcheck disable=SC2086 # YAJL_CFLAGS, PCRE2_CFLAGS are lists of flags
  "$clang" "${cflags[@]}" $yajl_cflags $pcre2_cflags \
    -fsanitize=fuzzer-no-link,address,undefined \
    -c -o "$out/bin/core/$c.o" "$src/plugin/$c.c" || {
    echo "run-fuzz.sh: cannot compile plugin/$c.c" >&2
    exit 1
  }
  objs+=("$out/bin/core/$c.o")
done
# Every target links the fixtures the tests share (tests/fixture.c).
for t in "${targets[@]}"; do
  # shellcheck disable=SC2086
  "$clang" "${cflags[@]}" $yajl_cflags $pcre2_cflags \
    -fsanitize=fuzzer,address,undefined \
    -o "$out/bin/$t" "$src/tests/fuzz/$t.c" "$src/tests/fixture.c" \
    "${objs[@]}" $yajl_libs $pcre2_libs || {
    echo "run-fuzz.sh: cannot build $t (is libclang-rt-14-dev installed?)" >&2
    exit 1
  }
done

# Files the targets write (StateFiles, /proc/net copies): tmpfs when there
# is one, and removed however the targets end.
PO_FUZZ_TMPDIR=$(mktemp -d "$([ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/po-fuzz-run.XXXXXX") || exit 1
export PO_FUZZ_TMPDIR
trap 'rm -rf "$PO_FUZZ_TMPDIR"' EXIT

failed=0
summary=()
for t in "${targets[@]}"; do
  bin=$out/bin/$t
  work=$out/corpus/$t
  art=$out/artifacts/$t
  log=$out/$t.log
  regs=$src/tests/fuzz/regressions/$t
  seeds=$src/tests/fuzz/corpus/$t
  mkdir -p "$work" "$art"

  # Regressions first: each is a crash that was fixed.
  if [ -d "$regs" ] && [ -n "$(ls -A "$regs")" ]; then
    if ! "$bin" -runs=1 "$regs"/* >"$out/$t.regressions.log" 2>&1; then
      echo "== $t: a regression input fails again:" >&2
      tail -n 30 "$out/$t.regressions.log" >&2
      summary+=("$t: FAILED (regression)")
      failed=$((failed + 1))
      continue
    fi
  fi

  dirs=("$work")
  [ -d "$seeds" ] && dirs+=("$seeds")
  [ -d "$regs" ] && dirs+=("$regs")
  echo "== $t: fuzzing for $seconds s"
  # shellcheck disable=SC2086 # FUZZ_EXTRA is a list of flags
  timeout -k 10 $((seconds + 120)) "$bin" -max_total_time="$seconds" \
    -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$art/" ${FUZZ_EXTRA:-} "${dirs[@]}" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ $rc -eq 0 ]; then
    line="$t: ${execs:-?} executions in $seconds s, 0 crashes"
  else
    line="$t: FAILED (exit $rc) after ${execs:-?} executions"
    failed=$((failed + 1))
    grep -E 'invariant violated|ERROR: |SUMMARY: |runtime error' "$log" |
      head -n 5 >&2
    for a in "$art"/*; do
      [ -e "$a" ] && echo "   saved input: $a (copy it to tests/fuzz/regressions/$t/)" >&2
    done
    echo "   log: $log" >&2
  fi
  echo "   $line"
  summary+=("$line")
done

echo "== fuzz summary ($seconds s per target)"
for l in "${summary[@]}"; do
  echo "   $l"
done
[ $failed -eq 0 ] || {
  echo "run-fuzz.sh: $failed target(s) failed" >&2
  exit 1
}
