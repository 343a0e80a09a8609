#!/bin/bash
# validate.sh RUNTIME_BINARY OUTFILE
#
# Runs every OCI runtime-tools validation program (built in $SRC/validation/*/*.t)
# against RUNTIME_BINARY, one at a time, each with a timeout, and writes a
# tab-separated table  program<TAB>result<TAB>short reason  to OUTFILE.
# result is one of: pass, fail, skip (every TAP test point skipped), timeout.
# fail = a "not ok" line, a non-zero exit, or a YAML "error" diagnostic with no test points.
# Full stdout/stderr of each program goes to OUTFILE.logs/NAME.{out,err}.
#
# Environment knobs:
#   SRC=/var/cache/minidocker/rtools/src      runtime-tools tree (needs runtimetest + rootfs-amd64.tar.gz)
#   TIMEOUT=60                per-program timeout in seconds
#   ONLY="name1 name2"        run only these programs
#   STATE_ROOT=auto|none      auto: give the runtime a private state dir through a
#                             wrapper that adds `--root DIR` (runc/crun/runc-like CLIs);
#                             none: call the runtime as is and find leftovers by bundle path
#   HIDE_CGROUP2=1            re-run this script in a private mount namespace where the
#                             empty cgroup2 mount /sys/fs/cgroup/unified is replaced by a
#                             throw-away tmpfs (crun >= 1.x refuses a hybrid layout:
#                             "cgroups in hybrid mode not supported").  The tmpfs keeps
#                             crun's stray mkdirs out of the shared /sys/fs/cgroup tmpfs.
# Must run as root.
set -u

if [ "${HIDE_CGROUP2:-0}" = 1 ] && [ -z "${_RTOOLS_IN_NS:-}" ]; then
    export _RTOOLS_IN_NS=1
    exec unshare -m --propagation private sh -c \
        'umount /sys/fs/cgroup/unified && mount -t tmpfs -o size=1m,mode=755 rtools-nocg2 /sys/fs/cgroup/unified && exec "$0" "$@"' \
        "$0" "$@"
fi

if [ $# -ne 2 ]; then
    echo "usage: $0 RUNTIME_BINARY OUTFILE" >&2
    exit 2
fi
REAL_RUNTIME=$(readlink -f "$1")
OUTFILE=$2
SRC=${SRC:-/var/cache/minidocker/rtools/src}
TIMEOUT=${TIMEOUT:-60}
STATE_ROOT=${STATE_ROOT:-auto}
[ -x "$REAL_RUNTIME" ] || { echo "runtime $1 not executable" >&2; exit 2; }
[ -x "$SRC/runtimetest" ] || { echo "missing $SRC/runtimetest (build it first)" >&2; exit 2; }
[ -f "$SRC/rootfs-amd64.tar.gz" ] || { echo "missing $SRC/rootfs-amd64.tar.gz" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 2; }

LOGDIR=$OUTFILE.logs
mkdir -p "$LOGDIR"
WORK=$(mktemp -d /tmp/rtools-validate.XXXXXX)
# mktemp makes 0700 dirs; a container in a user namespace could not reach its
# rootfs below them (upstream bundles sit directly in world-searchable /tmp).
chmod 755 "$WORK"
CGROUP_NAMES='^(cgrouptest|testdir|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$'

if [ "$STATE_ROOT" = auto ]; then
    STATE=$WORK/state
    mkdir -p "$STATE"
    RUNTIME_CMD=$WORK/runtime
    printf '#!/bin/sh\nexec %q --root %q "$@"\n' "$REAL_RUNTIME" "$STATE" >"$RUNTIME_CMD"
    chmod +x "$RUNTIME_CMD"
else
    RUNTIME_CMD=$REAL_RUNTIME
fi

# Container ids whose bundle lies under $1 (or every id in the private state dir).
leftover_ids() {
    if [ "$STATE_ROOT" = auto ]; then
        "$RUNTIME_CMD" list -q 2>/dev/null
    else
        "$RUNTIME_CMD" list -f json 2>/dev/null |
            jq -r --arg p "$1" '.[]? | select(.bundle | startswith($p)) | .id' 2>/dev/null
    fi
}

# Top-level cgroup dirs with test-like names, one "controller/name" per line.
test_cgroups() {
    local d
    for d in /sys/fs/cgroup/*/; do
        case $(stat -f -c %T "$d") in cgroupfs | cgroup2fs) ;; *) continue ;; esac
        ls -1 "$d" 2>/dev/null | grep -E "$CGROUP_NAMES" | sed "s|^|${d}|"
    done | sort
}

# rmdir a cgroup tree depth-first (cgroup dirs are removed with rmdir, not rm -r).
remove_cgroup_tree() {
    find "$1" -depth -type d -exec rmdir {} \; 2>/dev/null
    [ -d "$1" ] && echo "cgroup $1 left (busy)" >&2
}

cleanup_program() {  # $1 = program tmp dir, $2 = cgroups present before
    local id m cg
    for id in $(leftover_ids "$1"); do
        echo "cleanup: delete --force $id" >&2
        timeout 20 "$RUNTIME_CMD" delete --force "$id" >/dev/null 2>&1 ||
            timeout 20 "$RUNTIME_CMD" kill "$id" KILL >/dev/null 2>&1
        timeout 20 "$RUNTIME_CMD" delete --force "$id" >/dev/null 2>&1
    done
    findmnt -rn -o TARGET | awk -v p="$1" 'index($0, p) == 1' | sort -r |
        while read -r m; do
            echo "cleanup: umount $m" >&2
            umount "$m" 2>/dev/null || umount -l "$m"
        done
    for cg in $(comm -13 "$2" <(test_cgroups)); do
        echo "cleanup: rmdir cgroup $cg" >&2
        remove_cgroup_tree "$cg"
    done
    rm -rf --one-file-system "$1"
}

# Print "result<TAB>reason" from a program's exit code and logs.
classify() {  # $1 = rc, $2 = stdout file, $3 = stderr file
    local rc=$1 out=$2 err=$3 nok total skips first
    nok=$(grep -c '^not ok' "$out")
    total=$(grep -cE '^(not )?ok' "$out")
    skips=$(grep -cE '^ok .*# (SKIP|skip)' "$out")
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
        printf 'timeout\tno result after %ss (%s/%s TAP points failed before)\n' "$TIMEOUT" "$nok" "$total"
    elif [ "$nok" -gt 0 ]; then
        first=$(grep -m1 '^not ok' "$out" | sed -E 's/^not ok [0-9]+ *-? *//')
        printf 'fail\t%s/%s not ok; first: %s\n' "$nok" "$total" "$first"
    elif [ "$rc" != 0 ]; then
        first=$(grep -vE '^\s*$|^exit status [0-9]+$|^Refer to: ' "$err" | tail -n1)
        printf 'fail\texit %s: %s\n' "$rc" "${first:-no stderr}"
    elif [ "$total" = 0 ]; then
        # Lifecycle tests (hooks, prestart, ...) plan 1..0 and report a failure only
        # as a YAML "error" diagnostic; *_fail tests print nothing and exit 0 on success.
        first=$(grep -m1 '"error":' "$out" | sed -E 's/^ *"error": *"//; s/\\n.*//; s/",?$//')
        if [ -n "$first" ]; then
            printf 'fail\tno TAP test points; error: %s\n' "$first"
        else
            printf 'pass\tno TAP test points, exit 0, no error reported\n'
        fi
    elif [ "$skips" = "$total" ]; then
        first=$(grep -m1 -E '^ok .*# (SKIP|skip)' "$out" | sed -E 's/.*# (SKIP|skip) *//')
        printf 'skip\t%s\n' "$first"
    else
        printf 'pass\t%s ok (%s skipped)\n' "$total" "$skips"
    fi
}

run_one() {  # $1 = program path
    local prog=$1 name tmp before rc res
    name=$(basename "$prog" .t)
    tmp=$(mktemp -d "$WORK/$name.XXXXXX")
    chmod 755 "$tmp"
    before=$WORK/cg-before
    test_cgroups >"$before"
    (cd "$SRC" && TMPDIR=$tmp RUNTIME=$RUNTIME_CMD PATH=$SRC:$PATH \
        timeout -k 5 "$TIMEOUT" "$prog" </dev/null >"$LOGDIR/$name.out" 2>"$LOGDIR/$name.err")
    rc=$?
    res=$(classify "$rc" "$LOGDIR/$name.out" "$LOGDIR/$name.err" | tr -d '\r' |
        sed -E 's/time="[^"]*" level=[a-z]+ msg=//' | cut -c1-200)
    cleanup_program "$tmp" "$before" 2>"$LOGDIR/$name.cleanup"
    [ -s "$LOGDIR/$name.cleanup" ] || rm -f "$LOGDIR/$name.cleanup"
    printf '%s\t%s\n' "$name" "$res" >>"$OUTFILE"
    printf '%-40s %s\n' "$name" "$res"
}

: >"$OUTFILE"
for prog in "$SRC"/validation/*/*.t; do
    name=$(basename "$prog" .t)
    if [ -n "${ONLY:-}" ] && ! grep -qw -- "$name" <<<"$ONLY"; then continue; fi
    run_one "$prog"
done
[ "$STATE_ROOT" = auto ] && rmdir "$STATE" 2>/dev/null
rm -rf "$WORK"
awk -F'\t' '{n[$2]++} END {for (r in n) printf "%s=%d ", r, n[r]; print ""}' "$OUTFILE" >&2
