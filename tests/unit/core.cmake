cairn_unit_test(test_fault SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_fault.c
                LIBS cairn_core LABELS quick TIMEOUT 30)
