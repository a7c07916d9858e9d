#!/bin/bash
# The demo step-1 stage (notebook 04) on foam89's step-1 data set (run `make book` first), with the
# runner's kernel settings: on idle cores (two threads), then beside one busy process (one thread).
# Prints the seconds of each. Figures in the README (Speed).
set -u
cd "$(dirname "$0")/../notebooks"
P=../.venv/bin/python
params() { $P - <<'PY'
import yaml; from foamlib.study import load_profile
d = load_profile("demo")
keys = ["seed", "search_space", "hyperband_trials", "bayes_trials", "search_epochs", "epochs", "patience", "batch_size"]
print(yaml.safe_dump({k: d[k] for k in keys}))
PY
}
mkdir -p ${TMPDIR:-/tmp}/foamlib_stage_load
params > ${TMPDIR:-/tmp}/foamlib_stage_load/params.yml
for case in idle busy; do
  rm -rf ${TMPDIR:-/tmp}/foamlib_stage_load/$case; mkdir -p ${TMPDIR:-/tmp}/foamlib_stage_load/$case/step1; cp -r ../runs/foam89/step1/data ${TMPDIR:-/tmp}/foamlib_stage_load/$case/step1/
  threads=2
  if [ $case = busy ]; then $P -c "while True: pass" & HOG=$!; sleep 2; threads=1; fi
  env=$($P -c "from foamlib.study import kernel_environment; print(' '.join(f'{k}={v}' for k,v in kernel_environment($threads).items()))")
  start=$(date +%s.%N)
  env $env $P -m papermill 04_unet_step1.ipynb ${TMPDIR:-/tmp}/foamlib_stage_load/$case/out.ipynb -f ${TMPDIR:-/tmp}/foamlib_stage_load/params.yml -p run_dir ${TMPDIR:-/tmp}/foamlib_stage_load/$case -p sample foam89 --log-level ERROR >/dev/null 2>&1
  rc=$?
  end=$(date +%s.%N)
  [ $case = busy ] && kill $HOG
  echo "$case threads=$threads rc=$rc seconds=$(echo "$end - $start" | bc) env=[$env]"
done
