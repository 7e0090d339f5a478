# The whole test suite, registered with ctest so that one summary line counts it all:
# C unit tests, busted specs (unit and integration against the simulator in real nginx),
# nginx tests of the LuaJIT build, valgrind over the integration specs, and luacheck.

set(KLING_SRC ${CMAKE_SOURCE_DIR})
# Semicolons escaped: ENVIRONMENT is a CMake list, and Lua's ";;" (the default path) must survive it.
set(KLING_LUA_PATH "${KLING_SRC}/lua/?.lua\\;${KLING_SRC}/lua/?/init.lua\\;\\;")
set(KLING_LUA_CPATH "${CMAKE_BINARY_DIR}/?.so\\;\\;")
set(KLING_SIM_DIR "${CMAKE_BINARY_DIR}/sim")
set(KLING_TEST_ENV
  "LUA_PATH=${KLING_LUA_PATH}"
  "LUA_CPATH=${KLING_LUA_CPATH}"
  "KLING_SIM_INFO=${KLING_SIM_DIR}/sim.json"
  "KLING_BUILD_DIR=${CMAKE_BINARY_DIR}"
  "KLING_JIT_BUILD_DIR=${CMAKE_BINARY_DIR}/jit"
  # No test reads or writes a user's learnt-durations cache (kling.engine.durations_file):
  # a directory cannot be made under /dev/null. Tests of the cache give their own path.
  "XDG_CACHE_HOME=/dev/null")

# C unit tests: one executable per spec/c/test_*.c, linked against the pure part only.
file(GLOB KLING_C_TESTS CONFIGURE_DEPENDS ${KLING_SRC}/spec/c/test_*.c)
foreach(src ${KLING_C_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE ${KLING_WARNINGS})
  target_link_libraries(${name} PRIVATE kling_pure)
  add_test(NAME c_${name} COMMAND ${name})
  list(APPEND KLING_C_TEST_NAMES c_${name})
endforeach()

# The money tests again over the portable 128-bit arithmetic of kling_money_muldiv (the path
# taken where the compiler has no unsigned __int128).
add_executable(test_money_portable ${KLING_SRC}/spec/c/test_money.c ${KLING_SRC}/src/pure/money.c)
target_include_directories(test_money_portable PRIVATE ${KLING_SRC}/src/pure)
target_compile_options(test_money_portable PRIVATE ${KLING_WARNINGS})
target_compile_definitions(test_money_portable PRIVATE ${KLING_DEFS} KLING_MONEY_NO_INT128)
add_test(NAME c_test_money_portable COMMAND test_money_portable)
list(APPEND KLING_C_TEST_NAMES c_test_money_portable)

if(NOT KLING_LUA STREQUAL "5.4")
  return()
endif()

# The sanitizer build registers its own short list (C tests and unit specs) and nothing else;
# the normal build registers the sanitizer build and the fuzz targets as tests.
include(cmake/sanitize.cmake)
if(KLING_SANITIZE)
  return()
endif()
include(cmake/fuzz.cmake)

# The LuaJIT flavour, built beside this one: nginx's Lua module embeds LuaJIT and cannot
# load a 5.4 module. build/jit/kling/core.so is what the nginx tests and examples load.
pkg_check_modules(LUAJIT luajit)
if(LUAJIT_FOUND)
  include(ExternalProject)
  ExternalProject_Add(kling_jit
    SOURCE_DIR ${KLING_SRC}
    BINARY_DIR ${CMAKE_BINARY_DIR}/jit
    CMAKE_ARGS -DKLING_LUA=jit -DKLING_TESTS=OFF -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE}
               -DKLING_SANITIZE=${KLING_SANITIZE}
    INSTALL_COMMAND ""
    BUILD_ALWAYS ON)
else()
  message(WARNING "luajit not found: the LuaJIT build and its nginx tests are skipped")
endif()

find_program(KLING_BUSTED busted REQUIRED)
find_program(KLING_LUACHECK luacheck)
find_program(KLING_VALGRIND valgrind)
find_program(KLING_NGINX nginx PATHS /usr/sbin)

# A simulator as a ctest fixture NAME in DIR: started once before the tests that require it,
# stopped after (--replace: one an interrupted run left in the build tree is restarted, not a
# failed fixture). Sets OUT_ENV to KLING_TEST_ENV with that simulator's KLING_SIM_INFO.
function(kling_sim_fixture name dir out_env)
  string(REPLACE "KLING_SIM_INFO=${KLING_SIM_DIR}/sim.json" "KLING_SIM_INFO=${dir}/sim.json" env
    "${KLING_TEST_ENV}")
  add_test(NAME ${name}_start COMMAND ${KLING_LUA_BIN} ${KLING_SRC}/bin/kling sim start --dir ${dir}
    --out ${dir}/sim.json --replace)
  add_test(NAME ${name}_stop COMMAND ${KLING_LUA_BIN} ${KLING_SRC}/bin/kling sim stop --dir ${dir})
  set_tests_properties(${name}_start PROPERTIES FIXTURES_SETUP ${name} ENVIRONMENT "${env}")
  set_tests_properties(${name}_stop PROPERTIES FIXTURES_CLEANUP ${name} ENVIRONMENT "${env}")
  set(${out_env} "${env}" PARENT_SCOPE)
endfunction()

# spec/DIR/*_spec.lua, a test each. With SHARDS > 0 (integration), each spec file runs against
# one of SHARDS simulators, the files dealt to them in turn by name, one spec at a time on each
# (they reset it and inject its faults): the specs mostly wait on the simulator's clock, and
# one simulator for them all was a 660 s chain of CI's 900.
function(kling_busted_tests dir shards)
  file(GLOB specs CONFIGURE_DEPENDS ${KLING_SRC}/spec/${dir}/*_spec.lua)
  list(SORT specs)
  if(shards GREATER 0)
    foreach(shard RANGE 1 ${shards})
      kling_sim_fixture(sim_${shard} ${CMAKE_BINARY_DIR}/sim-${shard} env_${shard})
    endforeach()
  endif()
  set(shard 1)
  foreach(spec ${specs})
    get_filename_component(name ${spec} NAME_WE)
    add_test(NAME ${dir}_${name}
      COMMAND ${KLING_LUA_BIN} ${KLING_BUSTED} --helper=${KLING_SRC}/spec/helper.lua ${spec}
      WORKING_DIRECTORY ${KLING_SRC})
    set_tests_properties(${dir}_${name} PROPERTIES ENVIRONMENT "${KLING_TEST_ENV}" TIMEOUT 600)
    if(shards GREATER 0)
      set_tests_properties(${dir}_${name} PROPERTIES ENVIRONMENT "${env_${shard}}"
        FIXTURES_REQUIRED sim_${shard} RESOURCE_LOCK sim_${shard})
      math(EXPR shard "${shard} % ${shards} + 1")
    endif()
  endforeach()
endfunction()
kling_busted_tests(unit 0)
kling_busted_tests(integration 2)

# Shell-driven tests (nginx with the LuaJIT build, killed batches, ...): spec/sh/*.sh.
file(GLOB KLING_SH_TESTS CONFIGURE_DEPENDS ${KLING_SRC}/spec/sh/*.sh)
foreach(script ${KLING_SH_TESTS})
  get_filename_component(name ${script} NAME_WE)
  add_test(NAME sh_${name} COMMAND bash ${script} WORKING_DIRECTORY ${KLING_SRC})
  set_tests_properties(sh_${name} PROPERTIES ENVIRONMENT "${KLING_TEST_ENV}" TIMEOUT 600)
  if(name MATCHES "^thirdparty_")
    # They npm-install into one cache (build/thirdparty): two installs at once break each other.
    set_tests_properties(sh_${name} PROPERTIES RESOURCE_LOCK thirdparty_npm)
  endif()
endforeach()

# valgrind over the integration specs: any leak or invalid access from the module fails. Its
# shards have a simulator each, so that they run beside the plain integration specs and beside
# each other instead of after them (the specs mostly wait on the simulator's clock: one shard of
# them all was the suite's longest test, 750 s of CI's 900). Spec files are split by their
# measured time under valgrind (cmake/valgrind_weights.txt).
if(KLING_VALGRIND)
  include(cmake/valgrind_shards.cmake)
  file(GLOB KLING_VG_SPECS CONFIGURE_DEPENDS ${KLING_SRC}/spec/integration/*_spec.lua)
  set(KLING_VG_SHARDS 1 2)
  kling_weighted_split("${KLING_VG_SPECS}" ${KLING_SRC}/cmake/valgrind_weights.txt KLING_VG_FILES_1
    KLING_VG_FILES_2)
  foreach(shard IN LISTS KLING_VG_SHARDS)
    kling_sim_fixture(sim_valgrind_${shard} ${CMAKE_BINARY_DIR}/sim-valgrind-${shard} env)
    add_test(NAME valgrind_integration_${shard}
      COMMAND ${KLING_VALGRIND} --quiet --error-exitcode=99 --leak-check=full
              --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
              --suppressions=${KLING_SRC}/spec/valgrind.supp
              ${KLING_LUA_BIN} ${KLING_BUSTED} --helper=${KLING_SRC}/spec/helper.lua
              ${KLING_VG_FILES_${shard}}
      WORKING_DIRECTORY ${KLING_SRC})
    # Started first (COST): the longest tests, and the rest fits beside them.
    set_tests_properties(valgrind_integration_${shard} PROPERTIES ENVIRONMENT "${env}"
      FIXTURES_REQUIRED sim_valgrind_${shard} RESOURCE_LOCK sim_valgrind_${shard} TIMEOUT 1200 COST 1000)
  endforeach()
endif()

if(KLING_LUACHECK)
  add_test(NAME luacheck COMMAND ${KLING_LUACHECK} lua bin/kling spec examples bench
    WORKING_DIRECTORY ${KLING_SRC})
endif()
