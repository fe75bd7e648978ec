# The benchmark programs end to end: a short sweep of each through loomrun checks its results
# (exit 0, "0 OK"), and an injected wrong value must be reported and make the program fail.
foreach(prog all_reduce_perf broadcast_perf reduce_perf all_gather_perf reduce_scatter_perf sendrecv_perf)
  add_test(NAME bench.${prog}.n3
    COMMAND $<TARGET_FILE:loomrun> -n 3 --timeout 120 -- $<TARGET_FILE:${prog}> -b 8 -e 1M -f 16 -d all -w 1 -n 2)
  set_tests_properties(bench.${prog}.n3 PROPERTIES TIMEOUT 150
    PASS_REGULAR_EXPRESSION "# Out of bounds values : 0 OK")
endforeach()
# A broadcast from 16 MiB: the root writes its own copy with streaming stores (chain.cc); an odd
# byte count puts segment boundaries off alignment, and a root other than 0 is checked too.
add_test(NAME bench.broadcast_perf.large_root_copy
  COMMAND $<TARGET_FILE:loomrun> -n 3 --timeout 120 -- $<TARGET_FILE:broadcast_perf> -b 16777229 -e 16777229 -d int8 -r 1 -w 0 -n 1)
set_tests_properties(bench.broadcast_perf.large_root_copy PROPERTIES TIMEOUT 150
  PASS_REGULAR_EXPRESSION "# Out of bounds values : 0 OK")
# 2 ranks: the chain's segments are at least 4 MiB there (chain.cc); 9 MiB and 3 bytes is three
# segments, the last one short, in place and out of place, from root 1.
add_test(NAME bench.broadcast_perf.two_ranks_large
  COMMAND $<TARGET_FILE:loomrun> -n 2 --timeout 120 -- $<TARGET_FILE:broadcast_perf> -b 9437187 -e 9437187 -d int8 -r 1 -w 0 -n 2)
set_tests_properties(bench.broadcast_perf.two_ranks_large PROPERTIES TIMEOUT 150
  PASS_REGULAR_EXPRESSION "# Out of bounds values : 0 OK")
add_test(NAME bench.wrong_value_fails
  COMMAND $<TARGET_FILE:loomrun> -n 2 --timeout 60 -- $<TARGET_FILE:all_reduce_perf> -b 1K -e 1K -w 0 -n 1)
set_tests_properties(bench.wrong_value_fails PROPERTIES TIMEOUT 90 WILL_FAIL TRUE
  ENVIRONMENT LOOM_BENCH_CORRUPT_RANK=1)
add_test(NAME bench.wrong_value_reported
  COMMAND $<TARGET_FILE:loomrun> -n 2 --timeout 60 -- $<TARGET_FILE:all_reduce_perf> -b 1K -e 1K -w 0 -n 1)
set_tests_properties(bench.wrong_value_reported PROPERTIES TIMEOUT 90
  ENVIRONMENT LOOM_BENCH_CORRUPT_RANK=1 PASS_REGULAR_EXPRESSION "Out of bounds values : [1-9][0-9]* FAILED")
add_test(NAME bench.reduce_kernel_perf COMMAND $<TARGET_FILE:reduce_kernel_perf> -s 1M -n 2 -w 1)
set_tests_properties(bench.reduce_kernel_perf PROPERTIES TIMEOUT 120)
add_test(NAME bench.idle_perf COMMAND $<TARGET_FILE:loomrun> -n 2 --timeout 60 -- $<TARGET_FILE:idle_perf> -t 1)
set_tests_properties(bench.idle_perf PROPERTIES TIMEOUT 90 PASS_REGULAR_EXPRESSION "max idle CPU")
# The emulated cluster (bench/cluster): 2 network-namespace hosts on a 1 Gbit/s bridge, one short
# all-reduce across them. Needs root, ip and tc; where they are missing bench/cluster exits 77 and
# the test is skipped. Its own cluster name (loomt), so it leaves a running bench/compare's alone.
add_test(NAME bench.cluster_smoke
  COMMAND ${PROJECT_SOURCE_DIR}/bench/cluster run --name loomt --hosts 2 --rate 1gbit --timeout 60
          --bin $<TARGET_FILE_DIR:loomd> -- $<TARGET_FILE:all_reduce_perf> -b 1M -e 1M -w 1 -n 2)
set_tests_properties(bench.cluster_smoke PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77
  SKIP_REGULAR_EXPRESSION "cannot emulate a cluster here" PASS_REGULAR_EXPRESSION "# Out of bounds values : 0 OK")
# LOOM_TCP_CONGESTION=auto across hosts (tests/bench/cluster_congestion.sh): Reno to near hosts at
# both ends of every data connection, the system's with LOOM_TCP_NEAR_RTT_US=0 or =system, read
# from the live sockets with ss. Root only (77 = skipped); its own cluster name (loomcc).
add_test(NAME transport.tcp_congestion_across_hosts
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bench/cluster_congestion.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/bin)
set_tests_properties(transport.tcp_congestion_across_hosts PROPERTIES TIMEOUT 150 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
