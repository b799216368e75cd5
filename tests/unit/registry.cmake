# Image format checkers (registry/qcow2.c): pure; images made by qemu-img at run time.
cairn_unit_test(test_qcow2 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_qcow2.c
                LIBS cairn_registry_fmt LABELS quick registry TIMEOUT 60)
# Image records and the in-memory index (registry/img_store.c): codec, seq
# ordering of late applies, tombstones, restart recovery, over a real pool.
if(TARGET cairn_registry)
  cairn_unit_test(test_img_store SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_img_store.c
                  LIBS cairn_registry LABELS quick registry TIMEOUT 120)
endif()
# An image's bytes into the pool (registry/img_*.c): qemu-img, qemu-io and python3 at run time.
cairn_unit_test(test_img_data SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_img_data.c
                LIBS cairn_registry_data LABELS registry TIMEOUT 600)
# The snapshot source needs bs_snapshot_open (issue 7's blockstore piece): test it once it exists.
file(GLOB _img_bs_src ${CMAKE_SOURCE_DIR}/blockstore/*.c)
foreach(_f ${_img_bs_src})
  file(STRINGS ${_f} _m REGEX "^int bs_snapshot_open\\(")
  if(_m)
    target_compile_definitions(test_img_data PRIVATE IMG_TEST_SNAPSHOT=1)
  endif()
endforeach()
