#!/usr/bin/env bash
# Fuzzes the sequence reader with libFuzzer for a while (default 300 s): builds fuzz/fuzz_sequence_reader.cpp
# with clang (Debian's clang package) under AddressSanitizer and UndefinedBehaviorSanitizer, seeds it with
# the committed test inputs, and runs it on every core. Not part of CI; run it after changing the reader.
#   bash scripts/fuzz-reader.sh [seconds]
# A crash leaves its input as build-fuzz/crash-* (reproduce: build-fuzz/fuzz_sequence_reader build-fuzz/crash-...).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
command -v clang++ >/dev/null || { echo "fuzz-reader: clang++ not found (sudo apt-get install clang)" >&2; exit 1; }
out=build-fuzz
mkdir -p "$out/corpus"
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc \
  fuzz/fuzz_sequence_reader.cpp src/data/sequence_reader.cpp src/io/line_reader.cpp src/data/alphabet.cpp \
  src/util/error.cpp -lz -o "$out/fuzz_sequence_reader"
# Seeds: every small test input, prefixed with the mode byte 0 (plain, map unknown letters to X).
for f in tests/data/*; do
  case "$f" in *.gz|*.md) continue ;; esac
  { printf '\0'; head -c 65536 "$f"; } > "$out/corpus/seed-$(basename "$f")"
done
jobs=$(nproc)
"$out/fuzz_sequence_reader" "$out/corpus" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -fork="$jobs" -artifact_prefix="$out/" -print_final_stats=1 2>&1 | tail -n 25
ls "$out"/crash-* "$out"/timeout-* "$out"/oom-* 2>/dev/null && { echo "fuzz-reader: findings above" >&2; exit 1; }
echo "fuzz-reader: ${seconds} s on $jobs cores without a finding"
