if(TARGET cairn_meta)
  cairn_unit_test(test_meta SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_meta.c
                  LIBS cairn_meta LABELS quick TIMEOUT 30)
endif()
