# Image format checkers (registry/qcow2.c): pure; images made by qemu-img at run time.
cairn_unit_test(test_qcow2 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_qcow2.c
                LIBS cairn_registry_fmt LABELS quick registry TIMEOUT 60)
# Image records and the in-memory index (registry/img_store.c): codec, seq
# ordering of late applies, tombstones, restart recovery, over a real pool.
if(TARGET cairn_registry)
  cairn_unit_test(test_img_store SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_img_store.c
                  LIBS cairn_registry LABELS quick registry TIMEOUT 120)
  # Upload claims (registry/img_ops.c): stale uploads touch nothing, a
  # failed import's revert commits on a full doc.
  cairn_unit_test(test_img_claims SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_img_claims.c
                  LIBS cairn_registry LABELS quick registry TIMEOUT 120)
endif()
# An image's bytes into the pool (registry/img_*.c): qemu-img, qemu-io and python3 at run time.
cairn_unit_test(test_img_data SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_img_data.c
                LIBS cairn_registry_data LABELS registry TIMEOUT 600)
