cairn_unit_test(test_hash SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_hash.c
                LIBS cairn_core LABELS quick TIMEOUT 30)
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_io.c)
  cairn_unit_test(test_io SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_io.c
                  LIBS cairn_core LABELS quick TIMEOUT 30)
endif()
