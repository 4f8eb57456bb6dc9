# Sourced by the device-machine result scripts (gpu_paper_size.sh, gpu_ns_stability.sh) after
# benchmarks/stage.sh; they set PY, WORK, DEVICE and NS_EVAL.

gpu_setup() {  # gpu_setup LOG: versions and the GPU into LOG; ns28 decoded into the cache once
  "$PY" -c "import torch, pyro, ppl_fewshot; print('torch', torch.__version__, 'pyro',
      pyro.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))" \
    | tee -a "$1" || return 1
  "$PY" -c "from ppl_fewshot.data.protocols import load_split as f; f('ns28', 'train'); f('ns28', 'test')"
}

export_fp16() {  # export_fp16 NAME: $WORK/NAME/checkpoint.pt -> $WORK/NAME.pt (float16)
  [ -f "$WORK/$1.pt" ] || stage "export_$1" 120 "$PY" -m ppl_fewshot.cli export --dtype float16 \
    --checkpoint "$WORK/$1/checkpoint.pt" --out "$WORK/$1.pt"
}

steps_of() {  # steps_of NAME: the steps the run in $WORK/NAME trained
  "$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['steps'])" "$WORK/$1/summary.json"
}

ns_classify() {  # ns_classify MODEL OUT LABEL: ns28 classification of $WORK/MODEL.pt into
  # $WORK/OUT with the protocol's binarized test inputs and $WORK/OUT_grey with grey levels
  local tag
  for tag in "" _grey; do
    [ -f "$WORK/$2$tag/classify.json" ] && continue
    # shellcheck disable=SC2046,SC2086
    stage "eval_$2$tag" 300 "$PY" -m ppl_fewshot.cli evaluate --checkpoint "$WORK/$1.pt" \
      --task classify --protocol ns28 $NS_EVAL --methods min-kl,min-kl-reverse,cosine \
      --device "$DEVICE" --out "$WORK/$2$tag" --label "$3${tag:+, grey test inputs}" \
      $([ -n "$tag" ] && echo --binarization none)
  done
}
