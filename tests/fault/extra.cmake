# Fault scenarios of ../shared/FAULTS.md that need emulated hosts (network namespaces): run alone
# (RUN_SERIAL) so no other test competes for the cores while heartbeats are short; skipped with a
# message where namespaces cannot be made (not root).
add_test(NAME fault.F2_detection
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fault/f2_detection.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/bin)
set_tests_properties(fault.F2_detection PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)

# The rank program of the elastic scenarios (F1, F4): in-place all-reduces checked exactly, retried
# among the survivors after a loss, joiners admitted at the next update.
add_executable(elastic_worker fault/elastic_worker.cpp)
target_link_libraries(elastic_worker PRIVATE loom)

# The README's elastic demo (scripts/elastic_demo.sh): loomd, 4 workers of the example, one killed
# with kill -9, one joining; passes only if every worker's final parameter hash is the same.
add_test(NAME examples.elastic_demo COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/elastic_demo.sh ${PROJECT_BINARY_DIR}/bin)
set_tests_properties(examples.elastic_demo PROPERTIES TIMEOUT 120 RUN_SERIAL TRUE)
add_test(NAME examples.elastic_demo_diloco
  COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/elastic_demo.sh ${PROJECT_BINARY_DIR}/bin -- --outer 8)
set_tests_properties(examples.elastic_demo_diloco PROPERTIES TIMEOUT 120 RUN_SERIAL TRUE)

# recovery_perf runs every event once, small (a smoke test: it passes when every event could be
# measured; its figures and targets are for bench/RESULTS.md, not for a test).
add_test(NAME bench.recovery_perf_smoke
  COMMAND ${PROJECT_BINARY_DIR}/bin/recovery_perf --smoke --reps 1 --bytes 1M)
set_tests_properties(bench.recovery_perf_smoke PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE
  ENVIRONMENT "LOOM_BIN_DIR=${PROJECT_BINARY_DIR}/bin")
