#!/usr/bin/env bash
# End-to-end test of Ctrl-C under mpirun (issue 13): `mpirun -np NP arcface train` on a tiny
# configuration, SIGINT to mpirun after the first step; then checks that the ranks stopped after
# the same step with its checkpoint the newest, that "stopped after step" is printed once, that mpirun
# exits non-zero, and that `--resume` under mpirun finishes the run. Fails loudly (exit 1).
# Usage: scripts/test_mpi_interrupt.sh ARCFACE_BINARY DATA_FOLDER [NP]
set -uo pipefail
binary=$1 data=$2 np=${3:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
fail() { echo "test_mpi_interrupt FAILED: $*"; echo "--- stdout"; cat "$work/out.txt"; echo "--- stderr"; cat "$work/err.txt"; exit 1; }
cat > "$work/tiny.json" <<'JSON'
{"backbone": {"stageChannels": [4, 8], "embeddingDimension": 16}, "epochs": 20, "warmupEpochs": 0,
 "batchSize": 10, "heldOutIdentities": 3, "checkpointEverySteps": 0}
JSON
mpirun -np "$np" --oversubscribe -x OPENBLAS_NUM_THREADS "$binary" train --data "$data" --output "$work/run" \
  --config "$work/tiny.json" --threads 1 > "$work/out.txt" 2> "$work/err.txt" &
launcher=$!
for _ in $(seq 1 600); do grep -q "^initial loss" "$work/out.txt" && break; kill -0 $launcher 2>/dev/null || break; sleep 0.2; done
grep -q "^initial loss" "$work/out.txt" || fail "no first step"
kill -INT $launcher
wait $launcher; status=$?
[ $status -ne 0 ] || fail "mpirun exited 0 after SIGINT"
stops=$(grep -c "^stopped after step" "$work/out.txt")
[ "$stops" -eq 1 ] || fail "'stopped after step' printed $stops times"
step=$(sed -n 's/^stopped after step \([0-9]*\).*/\1/p' "$work/out.txt")
# The stop's checkpoint is the newest (earlier ones are epoch ends); none after it.
newest=$(ls "$work/run/checkpoints" | grep '^step-' | sort | tail -1)
[ "$newest" = "$(printf 'step-%08d.safetensors' "$step")" ] || fail "newest checkpoint $newest, expected step $step: $(ls "$work/run/checkpoints")"
[ ! -e "$work/run/metrics.json" ] || fail "an interrupted run wrote metrics.json"
echo "interrupt: mpirun exited $status, stopped after step $step, its checkpoint the newest"
mpirun -np "$np" --oversubscribe -x OPENBLAS_NUM_THREADS "$binary" train --resume "$work/run" --data "$data" \
  > "$work/out.txt" 2> "$work/err.txt" || fail "the resumed run failed"
grep -q "^epoch  20/20" "$work/out.txt" || fail "the resumed run did not train to epoch 20"
[ -f "$work/run/metrics.json" ] || fail "the resumed run wrote no metrics.json"
echo "resume: finished, metrics.json written"
