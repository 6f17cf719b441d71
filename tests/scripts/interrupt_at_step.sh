# Sourced by the pretraining script tests. interrupt_at_step PID LOG STEP OUT: waits until LOG
# shows step STEP of the `pretrain` run (PID, the background job) that writes OUT, sends it Ctrl-C
# (SIGINT), and fails the test unless the run exits with 130 (a checkpoint saved).
interrupt_at_step() {
  local pid=$1 log=$2 step=$3 out=$4 status=0
  for _ in $(seq 1 1200); do
    grep -q "pretrain: step $step/" "$log" 2>/dev/null && break
    sleep 0.05
  done
  pkill -INT -f -- "--out $out " || true
  wait "$pid" || status=$?
  [ "$status" -eq 130 ] ||
    { cat "$log" >&2; echo "FAIL: the interrupted run exited with $status, expected 130" >&2; exit 1; }
}
