#!/bin/bash
while true; do
  for pid in $(pgrep -x tributary); do
    out=/work/s8/tio/$pid.txt; tmp=$out.tmp
    : > $tmp
    for t in /proc/$pid/task/*; do
      c=$(cat $t/comm 2>/dev/null | tr ' ' '_'); io=$(awk '/^wchar|^write_bytes|^syscw/ {printf "%s ", $2}' $t/io 2>/dev/null)
      echo "$c $io" >> $tmp
    done
    mv $tmp $out
  done
  sleep 0.3
done
