# ring: unit/property tests, and the CLI end to end: through `cairn ring` when
# the node links, and through a small driver (tests/ring/ring_cli_driver.c
# calls ring_cli_main, as `cairn ring` does) that needs only core and ring.
if(TARGET cairn_ring)
  cairn_unit_test(test_ring SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_ring.c
                  LIBS cairn_ring cairn_core LABELS quick TIMEOUT 120)
  add_executable(ring_cli_driver ${CMAKE_CURRENT_SOURCE_DIR}/ring/ring_cli_driver.c)
  target_link_libraries(ring_cli_driver PRIVATE cairn_ring cairn_core)
  add_test(NAME ring_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/ring/cli.sh
           $<TARGET_FILE:ring_cli_driver>)
  set_tests_properties(ring_cli PROPERTIES TIMEOUT 120 LABELS quick SKIP_RETURN_CODE 77)
  if(TARGET cairn)
    add_test(NAME ring_cli_cairn COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/ring/cli.sh
             $<TARGET_FILE:cairn> ring)
    set_tests_properties(ring_cli_cairn PROPERTIES TIMEOUT 120 LABELS quick SKIP_RETURN_CODE 77)
  endif()
endif()
