#!/bin/bash
# Issue 19: the join's ways, without SSH. Chunks already in a folder on tmpfs ($1: files c.0 ..
# c.N-1, as in a vessel's TempDir), joined into a file in a folder on another filesystem ($2),
# as the vessel does; the CPU of all the join's processes (user + sys of every child, bash's
# `time`). $3 rounds (default 3). For where the time goes; the figures that count are end to
# end (scripts/measure-join.ts).
#   mkdir -p /dev/shm/jb /var/tmp/jt
#   for i in $(seq 0 102); do head -c 10485760 /dev/urandom > /dev/shm/jb/c.$i; done
#   scripts/join-micro.sh /dev/shm/jb /var/tmp/jt 3
src=$1; dst=$2; rounds=${3:-3}
n=$(ls "$src" | grep -c '^c\.[0-9]*$')
TIMEFORMAT='%R wall %U user %S sys'
variant() {
  for r in $(seq 1 "$rounds"); do
    [ "$1" = hash-file ] || rm -f "$dst/d"; sync
    printf '%-16s ' "$1"
    { time sh -c "src=\$1 out=\$2 n=\$3; $2" sh "$src" "$dst/d" "$n" > /dev/null ; } 2>&1
  done
}
# In each: $src the chunk folder, $out the joined file, $n the chunk count.
# Until issue 19: tee per chunk into one openssl through a pipe.
variant tee-pipe 'i=0; : > "$out"; while [ $i -lt $n ]; do tee -a -- "$out" < "$src/c.$i" || exit 1; i=$((i+1)); done | openssl dgst -sha256 -r'
# cat per chunk, openssl over the joined file at the end.
variant cat-then-hash 'i=0; : > "$out"; while [ $i -lt $n ]; do cat -- "$src/c.$i" >> "$out" || exit 1; i=$((i+1)); done; openssl dgst -sha256 -r < "$out"'
# The same, one cat per 4 chunks (what joinScript does with 10 MiB chunks).
variant cat4-then-hash 'i=0; : > "$out"; set --; while [ $i -lt $n ]; do set -- "$@" "$src/c.$i"; i=$((i+1)); if [ $# -ge 4 ] || [ $i -eq $n ]; then cat -- "$@" >> "$out" || exit 1; set --; fi; done; openssl dgst -sha256 -r < "$out"' 
# cat per chunk twice: once appended, once into one openssl through a pipe (hashing overlaps).
variant cat-2x-pipe 'i=0; : > "$out"; while [ $i -lt $n ]; do cat -- "$src/c.$i" >> "$out" || exit 1; cat -- "$src/c.$i"; i=$((i+1)); done | openssl dgst -sha256 -r'
# The parts: copying alone (a cat per chunk; one cat for all), hashing the joined file alone.
variant copy-per-chunk 'i=0; : > "$out"; while [ $i -lt $n ]; do cat -- "$src/c.$i" >> "$out" || exit 1; i=$((i+1)); done'
variant copy-one-cat 'i=0; set --; while [ $i -lt $n ]; do set -- "$@" "$src/c.$i"; i=$((i+1)); done; cat -- "$@" > "$out"'
variant hash-file 'openssl dgst -sha256 -r < "$out"'
