# The public header as strict C99: compile-only check with the system C compiler, and a C program
# that links the shared library and runs.
add_executable(c99_api capi/c99_api.c)
set_target_properties(c99_api PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON C_EXTENSIONS OFF)
target_compile_options(c99_api PRIVATE -pedantic -Werror -Wall -Wextra)
target_link_libraries(c99_api PRIVATE loom)
add_test(NAME capi.c99_runs COMMAND c99_api)
add_test(NAME capi.c99_header_compiles
  COMMAND ${CMAKE_C_COMPILER} -std=c99 -pedantic -Werror -Wall -Wextra -fsyntax-only
          -I${PROJECT_SOURCE_DIR}/include ${CMAKE_CURRENT_SOURCE_DIR}/capi/c99_api.c)
set_tests_properties(capi.c99_runs capi.c99_header_compiles PROPERTIES TIMEOUT 60)
