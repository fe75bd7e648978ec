# Fuzz target as a plain program: replays the committed seed corpus under CTest, so every build
# checks that the codec still decodes one valid frame of each type and survives the near-misses.
# The libFuzzer build itself is separate (clang): tests/fuzz/run_fuzzer.sh SECONDS.
add_executable(fuzz_wire_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_wire.cc)
target_link_libraries(fuzz_wire_replay PRIVATE loom_internal)
target_compile_definitions(fuzz_wire_replay PRIVATE LOOM_FUZZ_REPLAY_MAIN)
target_compile_options(fuzz_wire_replay PRIVATE ${LOOM_WARNINGS})
add_test(NAME fuzz.corpus_replay COMMAND fuzz_wire_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus)
set_tests_properties(fuzz.corpus_replay PROPERTIES TIMEOUT 60)

# Regenerates the seed corpus after a wire change: `make_corpus tests/fuzz/corpus`. Not built by default.
add_executable(fuzz_make_corpus EXCLUDE_FROM_ALL ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/make_corpus.cc)
target_link_libraries(fuzz_make_corpus PRIVATE loom_internal)
