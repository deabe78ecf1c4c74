#!/usr/bin/env bash
# Move the tracked files a GPU training run does not need out of the working tree before a device
# call (`away`), and back after it (`back`); see scripts/gpu_stash.list. Run `back` before any
# commit: while they are aside, git sees them as deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
STASH=.gpu_stash
mapfile -t paths < <(grep -v '^\s*#' scripts/gpu_stash.list | sed '/^\s*$/d')
case "${1:-}" in
  away)
    if [ -d "$STASH" ] && [ -n "$(ls -A "$STASH")" ]; then
      echo "error: $STASH is not empty (run '$0 back' first)" >&2; exit 1
    fi
    for p in "${paths[@]}"; do
      [ -e "$p" ] || continue
      mkdir -p "$STASH/$(dirname "$p")"
      mv "$p" "$STASH/$p"
    done
    echo "moved aside: ${paths[*]}"
    echo "run '$0 back' after the device call, before any commit (git now sees them as deleted)" ;;
  back)
    for p in "${paths[@]}"; do
      [ -e "$STASH/$p" ] || continue
      if [ -e "$p" ]; then echo "error: $p exists; not overwriting it with $STASH/$p" >&2; exit 1; fi
      mkdir -p "$(dirname "$p")"
      mv "$STASH/$p" "$p"
    done
    find "$STASH" -depth -type d -empty -delete 2>/dev/null || true
    echo "restored: ${paths[*]}" ;;
  *) echo "usage: $0 away|back" >&2; exit 2 ;;
esac
