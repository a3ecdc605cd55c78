# Sourced by the GPU scripts: run named parts without ever stopping the script, then
# tabulate them. OUT must name the folder that receives each part's log.

declare -A STATUS ELAPSED
PARTS=()

# run_part NAME LIMIT_S COMMAND...: COMMAND's output to OUT/NAME.log (LIMIT_S 0: no limit).
run_part() {
  local name=$1 limit=$2 start=$SECONDS code=0
  shift 2
  PARTS+=("$name")
  echo "[$(date +%T)] $name$( ((limit)) && echo " (at most $limit s)"): $*" >&2
  if ((limit)); then
    timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.log" 2>&1 || code=$?
  else
    "$@" >"$OUT/$name.log" 2>&1 || code=$?
  fi
  ELAPSED[$name]=$((SECONDS - start))
  case $code in
    0) STATUS[$name]=ok ;;
    124 | 137) STATUS[$name]="timed out after $limit s" ;;
    *) STATUS[$name]="failed (exit $code)" ;;
  esac
  echo "[$(date +%T)] $name: ${STATUS[$name]} in ${ELAPSED[$name]} s" >&2
}

# The Markdown table of the parts run so far: name, status, wall seconds.
parts_table() {
  echo '| part | status | wall s |'
  echo '|---|---|---:|'
  for name in "${PARTS[@]}"; do
    echo "| $name | ${STATUS[$name]} | ${ELAPSED[$name]} |"
  done
}
