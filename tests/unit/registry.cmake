# Image format checkers (registry/qcow2.c): pure; images made by qemu-img at run time.
cairn_unit_test(test_qcow2 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_qcow2.c
                LIBS cairn_registry_fmt LABELS quick registry TIMEOUT 60)
