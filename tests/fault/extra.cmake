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
