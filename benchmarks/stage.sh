# Sourced by the device-machine scripts (benchmarks/gpu_check.sh, docs/results/gpu_paper_size.sh).
# stage NAME TIMEOUT_S CMD...: run CMD under `timeout`, its output in $STAGE_DIR/NAME.log, the
# command appended to $STAGE_DIR/commands.txt and "NAME rc seconds" to $STAGE_DIR/stages.tsv.
# Never fails: a failed or timed-out stage (rc 124) is recorded and the script goes on.
stage() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name: $*" | tee -a "$STAGE_DIR/commands.txt"
    timeout "$limit" "$@" > "$STAGE_DIR/$name.log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$STAGE_DIR/stages.tsv"
    tail -n 3 "$STAGE_DIR/$name.log"
    return 0
}
