#!/usr/bin/env bash
# Long Conv-TasNet runs on one GPU: the course configuration trained the same way on the
# real-speech default ("speech") and on the espeak voices ("espeak"), side by side, then
# the trainer's GPU paths (benchmarks/gpu_paths.py). Score the checkpoints on real speech
# afterwards, on any machine:
#     python benchmarks/transfer.py convtasnet --checkpoint OUT/ctn_speech/best.pt
#
#     bash benchmarks/gpu_speech_runs.sh OUT [MINUTES] [MAX_STEPS]
#
# It writes OUT/runs.tgz (checkpoints and logs) and prints what each run did.
set -uo pipefail
out=${1:?usage: gpu_speech_runs.sh OUT [MINUTES] [MAX_STEPS]}
minutes=${2:-5}
max_steps=${3:-20000}
python=${PYTHON:-python3}
work=$(mktemp -d)   # the runs live here; only runs.tgz goes to OUT
mkdir -p "$out"
export TPSEP_CACHE=${TPSEP_CACHE:-/tmp/tpsep_cache} TQDM_DISABLE=1 PYTHONUNBUFFERED=1

echo "== GPU paths"
timeout 150 "$python" benchmarks/gpu_paths.py 2>&1 | tail -40

echo "== rendering the two speech sets"
start=$(date +%s)
"$python" -c "from tpsep.data import dataset_folder as d; d('speech'); d('espeak')" || exit 1
echo "rendered in $(( $(date +%s) - start )) s"

for dataset in speech espeak; do
    "$python" -m tpsep train convtasnet --dataset "$dataset" --max-steps "$max_steps" --minutes "$minutes" \
        --device cuda --precision fp32 --lr 3e-3 --batch-size 4 --seconds 1 --grad-clip 5 --remix \
        --schedule plateau --num-workers 4 --no-progress --no-tensorboard --log-every 500 --seed 0 \
        --out "$work/ctn_$dataset" --json "$work/ctn_$dataset.json" > "$work/ctn_$dataset.log" 2>&1 &
done
wait
for dataset in speech espeak; do
    echo "== convtasnet on $dataset"
    tail -4 "$work/ctn_$dataset.log"
done
tar czf "$out/runs.tgz" --exclude=last.pt -C "$work" .   # best.pt only: OUT files are capped at 16 MB
ls -la "$out" "$work"/*
