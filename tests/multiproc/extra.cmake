# The collective matrix as real processes on loopback: one launch per (collective, world size),
# each iterating every datatype, op, in/out of place and count. Forced algorithms and tiny
# segments get launches of their own.
add_executable(collective_matrix multiproc/collective_matrix.cpp)
target_link_libraries(collective_matrix PRIVATE loom_internal)

function(loom_matrix_test name n)
  add_test(NAME multiproc.${name}.n${n}
    COMMAND $<TARGET_FILE:loomrun> -n ${n} --timeout 300 -- $<TARGET_FILE:collective_matrix> ${ARGN})
  set_tests_properties(multiproc.${name}.n${n} PROPERTIES TIMEOUT 330)
endfunction()

foreach(n 1 2 3 4 5 8)
  foreach(coll allreduce broadcast reduce allgather reducescatter sendrecv async)
    loom_matrix_test(${coll} ${n} --coll ${coll} --segment 4096)
  endforeach()
endforeach()
foreach(n 3 4)
  loom_matrix_test(allreduce_default_segments ${n} --coll allreduce)
endforeach()
foreach(n 2 3 5)
  foreach(algo ring rd)
    loom_matrix_test(allreduce_${algo} ${n} --coll allreduce --segment 1024)
    set_property(TEST multiproc.allreduce_${algo}.n${n} PROPERTY ENVIRONMENT LOOM_ALLREDUCE_ALGO=${algo})
  endforeach()
  foreach(algo chain tree)
    loom_matrix_test(broadcast_${algo} ${n} --coll broadcast --segment 1024)
    set_property(TEST multiproc.broadcast_${algo}.n${n} PROPERTY ENVIRONMENT LOOM_BROADCAST_ALGO=${algo})
  endforeach()
endforeach()
