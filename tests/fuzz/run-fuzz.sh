#!/usr/bin/env bash
# Builds every libFuzzer target of tests/fuzz with clang
# -fsanitize=fuzzer,address,undefined and runs each, bounded.
#
#   tests/fuzz/run-fuzz.sh --smoke [TARGET...]     (make fuzz-smoke)
#   tests/fuzz/run-fuzz.sh [SECONDS] [TARGET...]   (make fuzz)
#
# --smoke is deterministic, for CI: each target runs from a fixed seed
# (-seed) for a fixed number of inputs (-runs), both from the table below
# (chosen so that each target takes 20-30 s on the 2-core CI machine), from
# a fresh, empty work corpus, without the mutations that insert values the
# target compared at run time (-use_cmp=0 -use_memmem=0: those values hold
# addresses, pids, clock readings and temporary file names, which differ
# from run to run), without the once-a-second re-read of the work corpus
# (-reload=0: when it happens depends on the clock), and with address space
# randomization off (setarch -R, where the kernel allows it: the same input
# took other branches at other addresses in fuzz_owners_json). Same
# sources, same seed, same count: the same inputs run, so a smoke run that
# passes passes again and one that fails fails again (a time limit would
# not: how far a run gets would depend on the machine's load). The summary
# shows each target's final coverage and a digest of the corpus it grew:
# two runs print the same.
#
# Without --smoke the run is randomized, for longer fuzzing: SECONDS per
# target (the argument, else $FUZZ_SECONDS, else 60), a random seed (or
# $FUZZ_SEED) printed with each target's result, and a work corpus that
# grows across runs ($FUZZ_OUT/corpus/<target>). FUZZ_SEED=N starts the same
# mutations again, but where a timed run stops depends on the clock: what
# replays a crash is the input it saved.
#
# Either way each target first replays every input of its seed corpus
# (tests/fuzz/corpus/<target>) and of its regressions
# (tests/fuzz/regressions/<target>), under the same limits, and fails if
# one fails. Then it fuzzes with -rss_limit_mb=$FUZZ_RSS_MB (default 1024)
# and -timeout=$FUZZ_TIMEOUT (default 5 s per input): running out of
# memory or taking longer than that is a crash like any other and fails the
# target, as do a sanitizer report, a leak and a violated invariant (a
# deadly signal: FUZZ_CHECK aborts).
#
# Every crash found becomes a regression input: the input that libFuzzer
# saved (named below, under $FUZZ_OUT/artifacts/<target>/) is copied to
# tests/fuzz/regressions/<target>/ with a name that says what it found,
# then the bug is fixed; make check replays it under valgrind from then on.
#
# Prints per target "TARGET: N executions ..." (libFuzzer's
# stat::number_of_executed_units, with the final coverage, which two runs
# of --smoke repeat exactly) or "TARGET: FAILED ...", then the same lines
# after "== fuzz summary"; exits 1 when a target failed. TARGET:
# fuzz_proc_net ... (default: every tests/fuzz/fuzz_*.c). Builds into
# $FUZZ_OUT (default ./tests/fuzz/out, under the current directory: the
# build directory when make calls it).
#
# Environment: CLANG (default clang), FUZZ_SECONDS, FUZZ_SEED, FUZZ_OUT,
# FUZZ_RSS_MB, FUZZ_TIMEOUT, YAJL_CFLAGS and YAJL_LIBS (default from
# pkg-config yajl), PCRE2_CFLAGS and PCRE2_LIBS (default from pkg-config
# libpcre2-8), FUZZ_EXTRA (more libFuzzer flags, e.g. -jobs=2).
set -uo pipefail

# --smoke: target, -seed, -runs.
smoke_plan=(
  fuzz_cgroup 9108 500000
  fuzz_collectd_conf 9109 60000
  fuzz_config 9101 220000
  fuzz_json_string 9102 350000
  fuzz_netlink 9103 2000000
  fuzz_owners_json 9104 18000
  fuzz_portspec 9105 650000
  fuzz_proc_net 9106 90000
  fuzz_statefile 9107 55000
)

src=$(cd "$(dirname "$0")/../.." && pwd)
smoke=0
if [ "${1:-}" = --smoke ]; then
  smoke=1
  shift
  seconds=
else
  seconds=${1:-${FUZZ_SECONDS:-60}}
  [ $# -gt 0 ] && shift
  case $seconds in
  '' | *[!0-9]*)
    echo "run-fuzz.sh: bad SECONDS '$seconds': expected a whole number" >&2
    exit 2
    ;;
  esac
fi
rss_mb=${FUZZ_RSS_MB:-1024}
per_input=${FUZZ_TIMEOUT:-5}
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

# The seed and run count of a target in --smoke.
smoke_of() {
  local i
  for ((i = 0; i < ${#smoke_plan[@]}; i += 3)); do
    if [ "${smoke_plan[i]}" = "$1" ]; then
      echo "${smoke_plan[i + 1]} ${smoke_plan[i + 2]}"
      return 0
    fi
  done
  return 1
}
if [ $smoke -eq 1 ]; then
  for t in "${targets[@]}"; do
    smoke_of "$t" >/dev/null || {
      echo "run-fuzz.sh: $t has no seed and run count in smoke_plan (tests/fuzz/run-fuzz.sh)" >&2
      exit 2
    }
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

# What a failed run's log says it was.
why_failed() {
  if grep -q 'out-of-memory' "$1"; then
    echo "out of memory, over $rss_mb MB"
  elif grep -q 'ERROR: libFuzzer: timeout' "$1"; then
    echo "an input took over $per_input s"
  elif grep -q 'invariant violated' "$1"; then
    echo "invariant violated"
  elif grep -q 'ERROR: LeakSanitizer' "$1"; then
    echo "leak"
  elif grep -qE 'ERROR: AddressSanitizer|runtime error' "$1"; then
    echo "sanitizer"
  else
    echo "crash"
  fi
}

limits=(-rss_limit_mb="$rss_mb" -timeout="$per_input")
# --smoke: the same addresses every run, where the kernel lets us.
fixed_addresses=(setarch "$(uname -m)" -R)
if [ $smoke -eq 1 ] && ! "${fixed_addresses[@]}" true 2>/dev/null; then
  echo "run-fuzz.sh: setarch -R refused: address space randomization stays on (a target may not repeat exactly)" >&2
  fixed_addresses=()
fi
failed=0
summary=()
for t in "${targets[@]}"; do
  bin=$out/bin/$t
  art=$out/artifacts/$t
  log=$out/$t.log
  regs=$src/tests/fuzz/regressions/$t
  seeds=$src/tests/fuzz/corpus/$t
  mkdir -p "$art" || exit 1
  touch "$out/$t.start"

  # The seed corpus and the regressions first, each input once, under the
  # same limits: each regression is a crash that was fixed.
  inputs=()
  for d in "$seeds" "$regs"; do
    [ -d "$d" ] || continue
    for f in "$d"/*; do
      [ -f "$f" ] && inputs+=("$f")
    done
  done
  if [ ${#inputs[@]} -gt 0 ] &&
    ! "$bin" "${limits[@]}" -artifact_prefix="$art/" -runs=1 "${inputs[@]}" \
      >"$out/$t.replay.log" 2>&1; then
    why=$(why_failed "$out/$t.replay.log")
    echo "== $t: a corpus or regression input fails ($why):" >&2
    grep -E '^Running: |invariant violated|ERROR: |SUMMARY: |runtime error' \
      "$out/$t.replay.log" | tail -n 6 >&2
    echo "   log: $out/$t.replay.log" >&2
    line="$t: FAILED (replay of corpus and regressions: $why)"
    echo "   $line"
    summary+=("$line")
    failed=$((failed + 1))
    continue
  fi

  if [ $smoke -eq 1 ]; then
    read -r seed runs <<<"$(smoke_of "$t")"
    work=$out/smoke-corpus/$t # fresh each time: part of what is repeated
    rm -rf "$work"
    mkdir -p "$work" || exit 1
    how=(-seed="$seed" -runs="$runs" -use_cmp=0 -use_memmem=0 -reload=0)
    run=("${fixed_addresses[@]}")
    guard=900 # wall-clock seconds: far past the 20-30 s planned
    what="seed $seed, $runs runs"
  else
    seed=${FUZZ_SEED:-$((($(od -An -N4 -tu4 /dev/urandom) % 2147483646) + 1))}
    work=$out/corpus/$t
    mkdir -p "$work" || exit 1
    how=(-seed="$seed" -max_total_time="$seconds")
    run=()
    guard=$((seconds + 120))
    what="seed $seed, $seconds s"
  fi
  dirs=("$work")
  [ -d "$seeds" ] && dirs+=("$seeds")
  [ -d "$regs" ] && dirs+=("$regs")
  echo "== $t: fuzzing ($what)"
  start=$(date +%s)
  # shellcheck disable=SC2086 # FUZZ_EXTRA is a list of flags
  timeout -k 10 "$guard" "${run[@]}" "$bin" "${how[@]}" "${limits[@]}" \
    -print_final_stats=1 -artifact_prefix="$art/" ${FUZZ_EXTRA:-} \
    "${dirs[@]}" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1)
  # --smoke: a digest of the inputs it kept (each named by its SHA-1).
  [ $smoke -eq 0 ] ||
    cov="${cov:-no coverage line}, corpus $(cd "$work" && ls | LC_ALL=C sort | sha1sum | cut -c1-12)"
  if [ $rc -eq 0 ]; then
    line="$t: ${execs:-?} executions in $took s ($what; ${cov:-no coverage line}), 0 crashes"
  else
    why=$(why_failed "$log")
    [ $rc -eq 124 ] && why="still running after $guard s"
    line="$t: FAILED ($why, exit $rc) after ${execs:-?} executions ($what)"
    failed=$((failed + 1))
    grep -E 'invariant violated|ERROR: |SUMMARY: |runtime error' "$log" |
      head -n 5 >&2
    find "$art" -type f -newer "$out/$t.start" | while read -r a; do
      echo "   saved input: $a (copy it to tests/fuzz/regressions/$t/)" >&2
    done
    [ $smoke -eq 1 ] || echo "   same mutations again: FUZZ_SEED=$seed" >&2
    echo "   log: $log" >&2
  fi
  echo "   $line"
  summary+=("$line")
done

if [ $smoke -eq 1 ]; then
  echo "== fuzz summary (smoke: fixed seeds and run counts, -rss_limit_mb=$rss_mb, -timeout=$per_input)"
else
  echo "== fuzz summary ($seconds s per target, -rss_limit_mb=$rss_mb, -timeout=$per_input)"
fi
for l in "${summary[@]}"; do
  echo "   $l"
done
[ $failed -eq 0 ] || {
  echo "run-fuzz.sh: $failed target(s) failed" >&2
  exit 1
}
