# Sourced by the test scripts that need emulated hosts (bench/cluster). After
#   cluster="$src/bench/cluster"; name=NAME; cluster_up HOSTS LABEL
# a fresh cluster NAME of HOSTS hosts is up, and it is removed when the script exits. Where this
# machine cannot emulate one (not root, no ip/tc, no namespaces) the script exits 77, skipped.
cluster_up() {
  local hosts=$1 label=$2 rc
  "$cluster" down --name "$name" >/dev/null 2>&1
  "$cluster" up --name "$name" --hosts "$hosts" >/tmp/$name-up.log 2>&1
  rc=$?
  if [ $rc -ne 0 ]; then
    cat /tmp/$name-up.log
    [ $rc -eq 77 ] && { echo "$label: cannot emulate a cluster here: skipped"; exit 77; }
    exit 1
  fi
  trap '"$cluster" down --name "$name" >/dev/null 2>&1' EXIT
}
