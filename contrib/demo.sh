#!/usr/bin/env bash
# portowner's main job, from a clean clone on Debian 12: installs what is
# missing, builds, and runs the real collectd in the foreground with portowner
# watching every port that is listening when it starts, plus a demo listener
# that it stops and starts again so that a FAILURE and an OKAY show up.
# collectd's output (logfile, and write_log's values in JSON) goes through
# contrib/demo-view.py: one line per read with the demo block's values, every
# notification marked "!!", collectd's errors, warnings and notices as they
# are. PORTOWNER_DEMO_RAW=1 shows collectd's output unfiltered.
# Ctrl-C stops it. Run it as root to see the owners of every process.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential autoconf automake libtool pkg-config collectd-core
  collectd-dev libyajl-dev libpcre2-dev libcmocka-dev netbase python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -x portowner-dump ] || [ ! -f .libs/portowner.so ]; then
  [ -f configure ] || autoreconf -fi >/dev/null 2>&1
  [ -f Makefile ] || ./configure -q
fi
make -s -j"$(nproc)" >/dev/null

dir=$(mktemp -d /tmp/portowner-demo.XXXXXX)
mkdir -p "$dir/plugins"
# collectd refuses symlinked plugins: copy them.
cp .libs/portowner.so "$dir/plugins/"
for p in logfile write_log; do cp "/usr/lib/collectd/$p.so" "$dir/plugins/"; done

demo_port=${PORTOWNER_DEMO_PORT:-18099}
/usr/bin/python3 -m http.server "$demo_port" --bind 127.0.0.1 >/dev/null 2>&1 &
demo_pid=$!
for _ in $(seq 50); do
  ./portowner-dump --json --port "$demo_port" 2>/dev/null | grep -q '"pid"' && break
  sleep 0.1
done

# One <Port> block per listening port, from what portowner-dump sees now.
{
  echo "Interval 1"
  echo "PluginDir \"$dir/plugins\""
  echo 'TypesDB "/usr/share/collectd/types.db"'
  echo 'LoadPlugin logfile'
  echo '<Plugin logfile>'
  echo '  LogLevel "info"'
  echo '  File STDOUT'
  echo '  Timestamp true'
  echo '  PrintSeverity true'
  echo '</Plugin>'
  echo 'LoadPlugin write_log'
  echo '<Plugin write_log>'
  echo '  Format "JSON"'
  echo '</Plugin>'
  ./portowner-dump --json 2>/dev/null |
    /usr/bin/python3 contrib/config-from-dump.py --plugin-only
} >"$dir/collectd.conf"
block="tcp-$demo_port"
grep -q "<Port \"$block\">" "$dir/collectd.conf" || {
  echo "demo: portowner-dump does not see the demo listener on port $demo_port" >&2
  exit 1
}
echo "== collectd $(collectd -h | sed -n 's/^collectd \([0-9][0-9.]*[0-9]\).*/\1/p') with portowner," \
  "Interval 1, watching $(grep -c '<Port ' "$dir/collectd.conf") ports" \
  "(config: $dir/collectd.conf)"
echo "== the demo block \"$block\": python3 -m http.server on 127.0.0.1:$demo_port" \
  "(pid $demo_pid), stopped at 6 s and started again 6 s later"

# Stop the demo listener after 6 s and start it again 6 s later.
(
  sleep 6
  echo "== demo: stopping the listener on 127.0.0.1:$demo_port (pid $demo_pid)"
  kill "$demo_pid" 2>/dev/null || true
  sleep 6
  echo "== demo: starting it again"
  exec /usr/bin/python3 -m http.server "$demo_port" --bind 127.0.0.1 >/dev/null 2>&1
) &
toggler=$!
# (set -e holds in the trap too: a kill of a process gone already must not
# stop it before the rm.)
trap 'kill $toggler $demo_pid 2>/dev/null || true
pkill -P $toggler 2>/dev/null || true
rm -rf "$dir"' EXIT
if [ -n "${PORTOWNER_DEMO_RAW:-}" ]; then
  collectd -f -C "$dir/collectd.conf"
else
  collectd -f -C "$dir/collectd.conf" 2>&1 |
    /usr/bin/python3 -u contrib/demo-view.py --block "$block"
fi
