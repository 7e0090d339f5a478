# libFuzzer targets for src/pure (spec/fuzz), built with clang into build/fuzz when clang is
# installed. Each target is a ctest labelled "fuzz" that runs scripts/fuzz for a fixed time
# and fails on a crash, a sanitizer report, a leak or a broken invariant.

find_program(KLING_CLANG NAMES clang clang-14)
if(NOT KLING_CLANG)
  message(WARNING "clang not found: the fuzz targets are not built (apt-get install clang libfuzzer-14-dev)")
  return()
endif()

set(KLING_FUZZ_DIR ${CMAKE_BINARY_DIR}/fuzz)
# Seconds each target runs in the suite: 15 targets x 8 s keeps fuzzing near a minute of wall
# time on two cores (at 12 s they were 195 of the suite's test-seconds, the suite at CI's 900 s
# bound); scripts/fuzz runs them for as long as asked (spec/fuzz/README.md: the long runs).
set(KLING_FUZZ_SECONDS 8 CACHE STRING "Seconds each fuzz target runs under ctest")

include(ExternalProject)
ExternalProject_Add(kling_fuzz
  SOURCE_DIR ${KLING_SRC}/spec/fuzz
  BINARY_DIR ${KLING_FUZZ_DIR}
  CMAKE_ARGS -DCMAKE_C_COMPILER=${KLING_CLANG} -DCMAKE_BUILD_TYPE=RelWithDebInfo
  INSTALL_COMMAND ""
  BUILD_ALWAYS ON)

file(GLOB KLING_FUZZ_TARGETS CONFIGURE_DEPENDS ${KLING_SRC}/spec/fuzz/fuzz_*.c)
foreach(src ${KLING_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" target ${name})
  add_test(NAME fuzz_${target} COMMAND ${KLING_SRC}/scripts/fuzz ${target} ${KLING_FUZZ_SECONDS})
  set_tests_properties(fuzz_${target} PROPERTIES LABELS fuzz TIMEOUT 300
    ENVIRONMENT "KLING_FUZZ_DIR=${KLING_FUZZ_DIR}")
endforeach()

# fuzz_money over the portable 128-bit muldiv (spec/fuzz/CMakeLists.txt), from money's corpus.
add_test(NAME fuzz_money_portable COMMAND ${KLING_SRC}/scripts/fuzz money_portable ${KLING_FUZZ_SECONDS})
set_tests_properties(fuzz_money_portable PROPERTIES LABELS fuzz TIMEOUT 300
  ENVIRONMENT "KLING_FUZZ_DIR=${KLING_FUZZ_DIR}")

# The harness checks itself: base64 decode with a deliberate off-by-one (compiled only into
# fuzz_base64_broken) must be caught. The test passes only on the sanitizer's report.
add_test(NAME fuzz_harness_check COMMAND ${KLING_SRC}/scripts/fuzz --no-corpus base64_broken 60)
set_tests_properties(fuzz_harness_check PROPERTIES LABELS fuzz TIMEOUT 300
  ENVIRONMENT "KLING_FUZZ_DIR=${KLING_FUZZ_DIR}"
  PASS_REGULAR_EXPRESSION "ERROR: AddressSanitizer: heap-buffer-overflow.*kling_b64_decode")
