#!/bin/sh
# Runs the spec files as JOBS busted processes at once (default: twice the
# machine's processors, plus one), each file in its own process, the longest
# first; then prints each file's output in order and the total. Most specs
# wait on a simulator over loopback, not on a CPU (a whole run uses about
# 10 s of CPU in 87 s of waiting), so five at once on two processors take
# 25 s (four took 29 s, six 22 s but starved the timing specs of CPU).
#   scripts/run-specs.sh LUA BUSTED CPATH [JOBS] [FILES...]
# The exit status is 1 when any file failed. Each file's own summary line is
# busted's ("N successes / N failures / ..."); the total line starts with
# "===" so that whoever sums busted's lines does not count it twice.
set -u
lua=$1 busted=$2 cpath=$3
jobs=${4:-}
[ -n "$jobs" ] || jobs=$(( 2 * $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1) + 1 ))
shift 3; [ $# -gt 0 ] && shift
files=${*:-$(find spec -name "*_spec.lua" | sort)}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# the longest first (by size, a fair proxy; a file that says "run-specs: long"
# waits on clocks for long and goes before all), so that no long file starts last
ordered=$(for f in $files; do
  w=$(wc -c < "$f"); grep -q "run-specs: long" "$f" && w=$((w + 100000000)); echo "$w $f"
done | sort -rn | awk '{print $2}')
echo "$ordered" | xargs -P "$jobs" -I{} sh -c '
  f={}; log="$1/$(basename "$f").log"
  "$2" "$3" --cpath="$4" "$f" > "$log" 2>&1; echo $? > "$log.status"' sh "$out" "$lua" "$busted" "$cpath"
status=0
for f in $files; do
  log="$out/$(basename "$f").log"
  echo "--- $f"
  cat "$log"
  [ "$(cat "$log.status" 2>/dev/null)" = 0 ] || status=1
done
grep -hEo '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$out"/*.log \
  | awk '{s += $1; f += $4; e += $7; p += $10} END {printf "=== spec files: %d successes / %d failures / %d errors / %d pending\n", s, f, e, p}'
exit $status
